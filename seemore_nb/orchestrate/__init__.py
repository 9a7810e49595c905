"Running the paper: the grid of runs and its stages, the cluster executor, and the main job `seemore_reproduce`."
