"The PyTorch training engine, which knows no task: run folders, devices, checkpoints, the trainer and the launcher."
