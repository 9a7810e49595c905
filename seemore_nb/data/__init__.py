"Prices to samples: prices, windows, spectrograms, the palette and the spectrogram store."
