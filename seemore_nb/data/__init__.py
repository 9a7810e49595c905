"Prices to samples: sources, prices, windows, spectrograms, the palette, the spectrogram store and its loaders."
