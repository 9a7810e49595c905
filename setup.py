"""Hand-written setup: metadata, requirements and console scripts come from settings.ini (nbdev 2)."""
from configparser import ConfigParser
from pathlib import Path

from setuptools import find_packages, setup

cfg = ConfigParser(delimiters=['='])
cfg.read(Path(__file__).parent / 'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

# Extras, from settings.ini's <name>_requirements: tf, paper, docs (it executes the paper's templates: paper too),
# cluster; dev is all of them plus the notebook and test tools.
EXTRAS = {name: cfg[f'{name}_requirements'].split() for name in ('tf', 'paper', 'docs', 'cluster')}
EXTRAS['docs'] += EXTRAS['paper']
EXTRAS['dev'] = list(dict.fromkeys([*(r for reqs in EXTRAS.values() for r in reqs), *cfg['dev_requirements'].split()]))

setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    author=cfg['author'],
    author_email=cfg['author_email'],
    license='Apache-2.0',
    classifiers=['Programming Language :: Python :: 3.11', 'License :: OSI Approved :: Apache Software License'],
    python_requires='>=' + cfg['min_python'],
    packages=find_packages(include=['seemore_nb', 'seemore_nb.*']),
    package_data={'seemore_nb': ['configs/*.yaml', 'configs/grids/*.yaml']},
    include_package_data=True,
    install_requires=cfg['requirements'].split(),
    extras_require=EXTRAS,
    entry_points={'console_scripts': cfg['console_scripts'].split(),
                  'seemore_nb.tasks': cfg['tasks'].split(),
                  'nbdev': [f"{cfg['lib_name']}={cfg['lib_name']}._modidx:d"]},
    zip_safe=False,
)
