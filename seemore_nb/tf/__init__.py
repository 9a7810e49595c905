"The TensorFlow engine: the Keras ViT, tf.data input and the MirroredStrategy trainer."
