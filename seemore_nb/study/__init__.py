"The stock study: the ViT, its evaluation, the classifier task and the baselines."
