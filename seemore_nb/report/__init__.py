"From runs to the paper: analysis, figures, the grid, baselines, results and the reproduce command."
