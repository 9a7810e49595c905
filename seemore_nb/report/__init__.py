"From runs to the paper: analysis, figures, the grid's cells, the VLM, baselines, results, the learnability control."
