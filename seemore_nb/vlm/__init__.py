"The Seemore vision-language model: captions data, the model and its task."
