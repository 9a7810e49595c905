"""seemore_nb: stock wavelet spectrograms to a ViT, and the Seemore VLM, as one reproducible nbdev paper.

The public API (`import seemore_nb as sn`; `nbs/90_api.ipynb`): `sn.load_config(profile_or_path, overrides=())`,
`sn.train(cfg, task=None)`, `sn.load_run(folder)`, `sn.build_store(cfg)`, `sn.open_store(cfg)`, `sn.reproduce(cfg)`.

Module map, in the notebooks' numbered bands (`nbs/NN_pkg.module.ipynb` exports `seemore_nb/pkg/module.py`);
a module imports only modules of lower numbers:

- 0x basics
  - `core`: the project root, atomic writes, one-line errors, children that die with their parent, optional extras
  - `schema`: the config's sections as typed dataclasses with their bounds
  - `config`: a config from YAML profiles and dotted overrides, strictly checked, saved and hashed; the task registry
  - `style`: one figure style and footer
  - `benchmarks`: the benchmark record, `figures/benchmarks.json`, its targets and `BENCHMARKS.md`
  - `record`: the record of every printed number, `results.json`, and the reproduction verdicts
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
  - `report.cells`: the grid's table, a row's config and run id, a saved plan, the runs a figure reads
  - `report.vlm`: the VLM's figures
  - `report.baselines`: the baselines' run folder, tables, figures and stage
  - `report.results`: RESULTS.md
  - `report.control`: the learnability control: accuracy against a planted signal's strength
  - `report.paper`: PAPER.md and README.md filled from the records, findings worded by their numbers
- 7x `orchestrate`: running the paper
  - `orchestrate.grid`: the plan of a config's grid, the stages registered with it
  - `orchestrate.cluster`: the grid on a cluster: each row a submitit job (`seemore_reproduce --executor slurm|local`)
  - `orchestrate.notebooks`: papermill from one process: a template executed into its record, skipped when unchanged
  - `orchestrate.reproduce`: `seemore_reproduce`
- 8x `tools`
  - `tools.gpu`: `seemore_bench gpu`, the GPU check of the `paper` profile
  - `tools.bench`: `seemore_bench`
  - `tools.docs`: the documentation site
- 9x the public API
  - `api`: `load_config`, `train`, `load_run`, `build_store`, `open_store`, `reproduce`, re-exported here
"""
__version__ = "0.1.0"

API = ('load_config', 'train', 'load_run', 'build_store', 'open_store', 'reproduce')
__all__ = ['__version__', *API]

def __getattr__(name: str):
    "The public API, imported on first use: `import seemore_nb` alone imports neither PyTorch nor TensorFlow."
    if name in API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
