"The stock study: the ViT, its evaluation and the classifier task."
