"""The best node, chosen by code (scientist/search/best.py): the primary metric, the noise floor of the baseline's
seeds, scores against the baseline frontier, and ties to the simpler, then earlier, node. Planted results, the SAE
template's real metric registry."""

import pytest

from scientist.experiment.manifest import Metric, MetricRegistry
from scientist.experiment.noise import Frontier, noise_threshold
from scientist.experiment.seeds import aggregate
from scientist.search.best import SearchError, best_node, noise_floor, primary_metric, score
from scientist.search.tree import Tree
from tests.scientist.conftest import SAE_METRICS

EV = "core.explained_variance"
CORE = {"explained_variance": 0.90, "mse": 250.0, "cossim": 0.99, "l0": 60.0, "dead_fraction": 0.0}


def result(seed: int = 0, **core: float) -> dict:
    """One run's final_info.json."""
    return {"settings": {"status": "ok", "means": {"seed": seed}},
            "core": {"status": "ok", "means": {**CORE, **core}}}


def baseline() -> dict:
    """The baseline on seeds 0, 1, 2: EV's standard deviation over them is 0.002, so its noise floor is 0.004."""
    runs = [result(seed, explained_variance=0.90 + offset, mse=250.0 + 1000 * offset)
            for seed, offset in enumerate((-0.002, 0.0, 0.002))]
    return aggregate(runs, [0, 1, 2], "settings.seed")


def ev() -> Metric:
    return SAE_METRICS.lookup("core", "explained_variance")


# ------------------------------------------------------------------------------------------------ the primary metric


def test_the_metric_the_idea_names_ranks_the_nodes():
    chosen = primary_metric(SAE_METRICS, baseline(), named="core.mse")
    assert chosen.metric.key == "core.mse"
    assert chosen.metric.direction == "lower"
    assert "named by the idea" in chosen.reason


@pytest.mark.parametrize("named", [None, "core.no_such_metric", "core.l0", "not a key"],
                         ids=["none named", "unknown", "not scored", "malformed"])
def test_otherwise_the_templates_first_key_metric_the_baseline_records(named):
    chosen = primary_metric(SAE_METRICS, baseline(), named=named)
    assert chosen.metric.key == SAE_METRICS.key_metrics[0].key == EV
    assert "first key metric" in chosen.reason
    assert (named or "") in chosen.reason


def test_a_key_metric_the_baseline_does_not_record_is_passed_over():
    """A synthetic preset has no CE loss score; here the baseline lacks EV, the first key metric."""
    base = baseline()
    del base["core"]["means"]["explained_variance"]
    assert primary_metric(SAE_METRICS, base).metric.key == "core.mse"


def test_no_scored_key_metric_is_an_error_that_says_what_to_fix():
    registry = MetricRegistry([Metric("core", "l0", "info", "active latents", key_metric=True)])
    with pytest.raises(SearchError, match="key_metric"):
        primary_metric(registry, baseline())


# --------------------------------------------------------------------------------------------- noise and scores


def test_the_noise_floor_is_the_noise_rule_on_the_baselines_seeds():
    assert noise_floor(ev(), baseline()) == pytest.approx(noise_threshold(0.90, 0.002)) == pytest.approx(0.004)
    single = result()
    assert noise_floor(ev(), single) == pytest.approx(noise_threshold(0.90, None)) == pytest.approx(0.0009)


def test_scores_follow_the_registry_direction():
    base = baseline()
    assert score(ev(), base, result(explained_variance=0.95)) == pytest.approx(0.05)
    mse = SAE_METRICS.lookup("core", "mse")
    assert score(mse, base, result(mse=240.0)) == pytest.approx(10.0)
    assert score(mse, base, result(mse=260.0)) == pytest.approx(-10.0)
    assert score(ev(), base, {"core": {"status": "failed", "reason": "crashed"}}) is None


def test_a_fidelity_metric_is_scored_against_the_frontier_at_the_nodes_own_sparsity():
    """The baseline retrained at L0 30 and 120 reaches EV 0.85 and 0.95: a node that is merely denser is no better."""
    base = baseline()
    frontier = Frontier("core.l0", (result(l0=30.0, explained_variance=0.85), result(l0=120.0,
                                                                                      explained_variance=0.95)))
    assert score(ev(), base, result(l0=120.0, explained_variance=0.95), frontier) == pytest.approx(0.0)
    assert score(ev(), base, result(l0=60.0, explained_variance=0.95), frontier) == pytest.approx(0.05)
    # Outside the frontier's range nothing is extrapolated: the baseline's own value is the reference.
    assert score(ev(), base, result(l0=500.0, explained_variance=0.95), frontier) == pytest.approx(0.05)


# ------------------------------------------------------------------------------------------------------ the best


def scored_tree(*nodes: tuple[str, float | None, int | None]) -> Tree:
    """Drafts with (status, score, lines changed), noise floor 0.004."""
    tree = Tree(metric=EV, noise=0.004, seed=0)
    for status, node_score, lines in nodes:
        node = tree.add("draft", None)
        node.status, node.score, node.lines_changed = status, node_score, lines
    return tree


def test_a_planted_node_better_only_within_noise_does_not_win():
    base = baseline()
    tree = Tree(metric=EV, noise=noise_floor(ev(), base), seed=0)
    honest, planted = tree.add("draft", None), tree.add("draft", None)
    for node, value, lines in ((honest, 0.920, 10), (planted, 0.923, 40)):
        node.status, node.lines_changed = "ok", lines
        node.score = score(ev(), base, result(explained_variance=value))
    assert planted.score > honest.score
    assert best_node(tree) is honest


def test_a_node_better_by_more_than_the_noise_wins_though_it_changed_more():
    tree = scored_tree(("ok", 0.010, 10), ("ok", 0.015, 80))
    assert best_node(tree).id == 1


def test_ties_go_to_the_earlier_node_and_first_to_the_simpler():
    assert best_node(scored_tree(("ok", 0.010, 10), ("ok", 0.012, 10))).id == 0
    assert best_node(scored_tree(("ok", 0.012, 30), ("ok", 0.010, 10))).id == 1
    # A node whose size is unknown counts as the least simple.
    assert best_node(scored_tree(("ok", 0.012, None), ("ok", 0.010, 50))).id == 1


def test_the_best_is_a_node_nobody_beats_whatever_order_they_came_in():
    """0 is beaten by 2; 1 and 2 are within noise of each other, so the simpler 1 is best even though it alone does
    not beat 0."""
    tree = scored_tree(("ok", 0.000, 5), ("ok", 0.003, 10), ("ok", 0.006, 20))
    assert best_node(tree).id == 1


def test_failed_running_and_unscored_nodes_are_never_best():
    assert best_node(scored_tree(("failed", None, 1), ("running", None, 1))) is None
    assert best_node(scored_tree(("failed", 0.5, 1), ("ok", None, 1), ("ok", -0.01, 90))).id == 2
