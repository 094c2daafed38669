"""Offline probing datasets for SAEBench's sparse probing and TPP evals, from the files the sae-probes wheel ships.

SAEBench 0.6.0 loads its probing sets from the Hugging Face hub (`dataset_utils.get_multi_label_train_test_data`).
The sae-probes wheel (a dependency of this environment) ships labelled texts drawn from the same sources as
binary tasks, one file per class: `sae_probes/data/cleaned_data/<n>_<task>.csv.zst` with columns prompt and
target. A class here is the positives (target 1) of one file, so each dataset is a multi-class set in SAEBench's
own shape: `{class name: [texts]}` for train and test, `size // 2` texts per class, disjoint, drawn with a seed.

`offline_datasets_routed()` makes SAEBench read these names from here and every other name from the hub as usual.
"""

import contextlib
import os
import random
from functools import cache

OFFLINE_DATASETS: dict[str, dict[str, str]] = {
    # dataset name -> {class name: sae-probes file whose positives are that class}
    "sae-probes/code_language": {"C": "158_code_C", "Python": "159_code_Python", "HTML": "160_code_HTML"},
    "sae-probes/ag_news_topic": {"world": "161_agnews_0", "sports": "162_agnews_1", "business": "163_agnews_2"},
    "sae-probes/amazon_sentiment": {"5.0": "157_amazon_5star"},
}
# The Amazon file is binary: its negatives (target 0) are the one-star reviews, the other class of SAEBench's
# amazon sentiment task.
NEGATIVE_CLASSES = {"sae-probes/amazon_sentiment": {"1.0": "157_amazon_5star"}}


class ProbingDataError(RuntimeError):
    """The sae-probes files are missing or too small for the sizes asked; the message says which and what to do."""


def data_dir() -> str:
    import sae_probes

    return os.path.join(os.path.dirname(sae_probes.__file__), "data", "cleaned_data")


@cache
def _texts(file_stem: str, target: int) -> tuple[str, ...]:
    import pandas as pd

    path = os.path.join(data_dir(), f"{file_stem}.csv.zst")
    if not os.path.exists(path):
        raise ProbingDataError(f"{path} is missing: reinstall the template environment (make setup), which "
                               "installs sae-probes from requirements-nodeps.txt.")
    frame = pd.read_csv(path)
    return tuple(str(text) for text in frame.loc[frame["target"] == target, "prompt"].drop_duplicates())


def class_sources(dataset_name: str) -> dict[str, tuple[str, int]]:
    """{class name: (sae-probes file, target value)} of one offline dataset."""
    sources = {name: (stem, 1) for name, stem in OFFLINE_DATASETS[dataset_name].items()}
    sources.update({name: (stem, 0) for name, stem in NEGATIVE_CLASSES.get(dataset_name, {}).items()})
    return dict(sorted(sources.items()))


def load_offline_dataset(dataset_name: str, train_set_size: int, test_set_size: int,
                         random_seed: int) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """SAEBench's (train, test) for an offline dataset: `size // 2` texts per class, as SAEBench draws them."""
    per_class_train, per_class_test = train_set_size // 2, test_set_size // 2
    train, test = {}, {}
    for class_name, (stem, target) in class_sources(dataset_name).items():
        texts = list(_texts(stem, target))
        if len(texts) < per_class_train + per_class_test:
            raise ProbingDataError(
                f"{dataset_name}: class {class_name} has {len(texts)} texts in {stem}, fewer than the "
                f"{per_class_train} + {per_class_test} asked; lower probe_train_set_size or probe_test_set_size.")
        random.Random(f"{random_seed}-{dataset_name}-{class_name}").shuffle(texts)
        train[class_name] = texts[:per_class_train]
        test[class_name] = texts[per_class_train:per_class_train + per_class_test]
    return train, test


@contextlib.contextmanager
def offline_datasets_routed():
    """While inside, SAEBench's probing and TPP evals read OFFLINE_DATASETS from the sae-probes files.

    Upstream looks a dataset up in three places: the loader `dataset_utils.get_multi_label_train_test_data`, the
    class list `dataset_info.chosen_classes_per_dataset` and, in TPP, `scr_and_tpp.main.COLUMN2_VALS_LOOKUP` (read
    for every dataset though only SCR uses it). The loader is wrapped and the two tables gain entries; all three
    are restored on the way out.
    """
    from sae_bench.evals.scr_and_tpp import main as scr_and_tpp_main
    from sae_bench.sae_bench_utils import dataset_info, dataset_utils

    upstream_loader = dataset_utils.get_multi_label_train_test_data

    def routed_loader(dataset_name, train_set_size, test_set_size, random_seed):
        if dataset_name in OFFLINE_DATASETS:
            return load_offline_dataset(dataset_name, train_set_size, test_set_size, random_seed)
        return upstream_loader(dataset_name, train_set_size, test_set_size, random_seed)

    classes = {name: list(class_sources(name)) for name in OFFLINE_DATASETS}
    added_classes = [name for name in classes if name not in dataset_info.chosen_classes_per_dataset]
    added_column2 = [name for name in classes if name not in scr_and_tpp_main.COLUMN2_VALS_LOOKUP]
    dataset_utils.get_multi_label_train_test_data = routed_loader
    dataset_info.chosen_classes_per_dataset.update({name: classes[name] for name in added_classes})
    scr_and_tpp_main.COLUMN2_VALS_LOOKUP.update({name: None for name in added_column2})
    try:
        yield
    finally:
        dataset_utils.get_multi_label_train_test_data = upstream_loader
        for name in added_classes:
            dataset_info.chosen_classes_per_dataset.pop(name, None)
        for name in added_column2:
            scr_and_tpp_main.COLUMN2_VALS_LOOKUP.pop(name, None)
