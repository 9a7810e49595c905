"""seemore_nb: stock wavelet spectrograms to a ViT, and the Seemore VLM, as one reproducible nbdev paper.

Module map, in the notebooks' numbered bands (`nbs/NN_pkg.module.ipynb` exports `seemore_nb/pkg/module.py`);
a module imports only modules of lower numbers:

- 0x basics
  - `core`: the project root, atomic writes, one-line errors, children that die with their parent
  - `schema`: the config's sections as typed dataclasses with their bounds, the task registry
  - `config`: a config from YAML profiles and dotted overrides, strictly checked, saved and hashed
  - `style`: one figure style and footer
  - `benchmarks`: the benchmark record, `figures/benchmarks.json`
- 1x `data`: prices to samples
  - `data.sources`: validated daily prices from a CSV file or yfinance and its cache
  - `data.prices`: the study's prices from the sample, yfinance or CSV, the context series, the calendar
  - `data.windows`: 80-day windows, labels, the chronological split
  - `data.spectrogram`: one window as a Morlet-CWT picture
  - `data.palette`: one byte per pixel
  - `data.store_files`: the store's key and folder housekeeping
  - `data.store`: the spectrogram store, the gallery and `seemore_store`
  - `data.loaders`: the PyTorch datasets over a store, and the per-file mode
  - `data.store_bench`: how the store build grows with the universe, `seemore_bench store`
- 2x `engine`: the PyTorch training engine, which knows no task
  - `engine.runs`: the run folder, its lock, resume checks, `load_run`
  - `engine.distributed`: devices, DDP, collectives, one rank's batches
  - `engine.checkpoints`: the safe checkpoint format
  - `engine.schedule`: learning rate and clipping
  - `engine.trainer`: the task interface and the trainer
  - `engine.machines`: multi-machine settings
  - `engine.launch`: `launch`, one child-process supervisor, torchrun and TensorFlow workers, `seemore_train`
- 3x `study`: the stock study
  - `study.vit`: the ViT
  - `study.evaluation`: test predictions, bootstrap intervals, the backtest
  - `study.classifier`: the classifier task
  - `study.baselines`: majority, logistic, ARIMA and multi-output regression
- 4x `tf`: the TensorFlow engine
  - `tf.vit`: the Keras ViT
  - `tf.data`: the tf.data input
  - `tf.trainer`: the MirroredStrategy trainer
- 5x `vlm`: the Seemore vision-language model
  - `vlm.data`: captions and the synthetic shapes
  - `vlm.model`: encoder, projector, decoder
  - `vlm.task`: the VLM task, scores, captioning and `seemore_caption`
- 6x `report`: from runs to the paper
  - `report.analysis`: runs read back into tables
  - `report.figures`: the grid's timing figures
  - `report.grid`: the grid of runs and stages
  - `report.vlm`: the VLM's figures
  - `report.baselines`: the baselines' run folder, tables, figures and stage
  - `report.results`: RESULTS.md
  - `report.control`: the learnability control: accuracy against a planted signal's strength
  - `report.cluster`: the grid on a cluster: each row a submitit job (`seemore_reproduce --executor slurm|local`)
  - `report.reproduce`: `seemore_reproduce`
- 7x `tools`
  - `tools.gpu`: `seemore_bench gpu`, the GPU check of the `paper` profile
  - `tools.bench`: `seemore_bench`
  - `tools.docs`: the documentation site
"""
__version__ = "0.1.0"
