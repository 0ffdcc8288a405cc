"""Merge search: choose merge coefficients by what the merged model scores.

A search space (stored on the job) says which settings of a mergekit config vary::

    {"base": {<mergekit config; model names may be artifacts>},
     "space": {"models.1.parameters.weight": [0.3, 0.5, 0.7],          # grid / random: values
               "models.2.parameters.weight": {"low": 0.0, "high": 1.0}}, # cma / random: a range
     "strategy": "grid" | "random" | "cma", "samples": 8, "seed": 0,
     "agent": "<agent slug: prompt and strategy to evaluate with>",
     "datasets": ["task-a", "task-b"], "limit": 20}

Each candidate is merged into a temporary folder, served by a temporary ``hf`` endpoint,
and scored by an experiment (``--here``, so each item is a normal trace) on every dataset.
The job's metrics hold the table of candidates with their scores and which are on the
Pareto front (as in the MAP paper: no other candidate is at least as good on every task
and better on one). The temporary folders are deleted when the search ends; *promote*
re-merges a chosen candidate into an artifact. CMA-ES comes from the ``cma`` package.
"""

from __future__ import annotations

import copy
import itertools
import random
import shutil
from typing import Any

import yaml

from .jobs import JobContext, JobError
from .merge_job import _merge_into
from .models import Job


def _set(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def search_space_check(config: dict[str, Any]) -> None:
    for key in ("base", "space", "agent", "datasets"):
        if key not in config:
            raise JobError(f"the search config needs {key!r}")
    if not isinstance(config["datasets"], list) or not config["datasets"]:
        raise JobError("'datasets' must list at least one dataset (two or more for a Pareto front)")
    if config.get("strategy", "grid") not in ("grid", "random", "cma"):
        raise JobError("'strategy' is grid, random or cma")
    for path, values in config["space"].items():
        if not (isinstance(values, list) and values) and not (
            isinstance(values, dict) and {"low", "high"} <= set(values)
        ):
            raise JobError(f"space {path!r}: give a list of values or {{low, high}}")


def _candidates(config: dict[str, Any]):
    """Yield settings ({path: value}) to try, for grid and random search."""
    space, strategy = config["space"], config.get("strategy", "grid")
    rng = random.Random(int(config.get("seed", 0)))
    if strategy == "grid":
        lists = {
            p: v if isinstance(v, list) else [v["low"], (v["low"] + v["high"]) / 2, v["high"]]
            for p, v in space.items()
        }
        for combo in itertools.product(*lists.values()):
            yield dict(zip(lists, combo, strict=True))
        return
    for _ in range(int(config.get("samples", 8))):
        yield {
            p: rng.choice(v) if isinstance(v, list) else round(rng.uniform(v["low"], v["high"]), 4)
            for p, v in space.items()
        }


def pareto_front(scores: list[list[float]]) -> list[bool]:
    """Which points no other point dominates (higher is better on every axis)."""
    front = []
    for i, a in enumerate(scores):
        dominated = any(
            all(b[k] >= a[k] for k in range(len(a))) and any(b[k] > a[k] for k in range(len(a)))
            for j, b in enumerate(scores)
            if j != i
        )
        front.append(not dominated)
    return front


def merge_search_run(job: Job, context: JobContext) -> None:
    from agents.evals.experiments import experiment_create, experiment_run_here
    from agents.evals.models import Dataset
    from agents.models import Agent, ModelEndpoint

    from .artifacts import artifacts_dir

    config = job.config
    search_space_check(config)
    template = Agent.objects.filter(slug=config["agent"]).first()
    if template is None:
        raise JobError(f"no agent {config['agent']!r} to evaluate with")
    datasets = list(Dataset.objects.filter(name__in=config["datasets"]))
    missing = sorted(set(config["datasets"]) - {d.name for d in datasets})
    if missing:
        raise JobError(f"no dataset(s) {', '.join(missing)}")
    datasets.sort(key=lambda d: config["datasets"].index(d.name))
    workdir = artifacts_dir() / ".jobs" / str(job.id)
    workdir.mkdir(parents=True, exist_ok=True)
    limit = config.get("limit")
    rows: list[dict[str, Any]] = []

    def evaluate(settings: dict[str, Any]) -> list[float]:
        context.check_cancel()
        index = len(rows)
        data = copy.deepcopy(config["base"])
        for path, value in settings.items():
            _set(data, path, value)
        text = yaml.safe_dump(data, sort_keys=False)
        folder = workdir / f"candidate-{index}"
        context.log(f"candidate {index}: {settings}")
        _merge_into(job, context, text, folder, share=(0, 0))
        endpoint = ModelEndpoint.objects.create(
            name=f"search-{job.id}-{index}",
            kind=ModelEndpoint.Kind.HF,
            config={
                "path": str(folder),
                "temporary": True,
                "max_new_tokens": config.get("max_new_tokens", 64),
            },
        )
        agent = Agent.objects.create(
            name=f"{template.name} · search {job.id} candidate {index}",
            slug=f"{template.slug}-search{job.id}-c{index}"[:50],
            endpoint=endpoint,
            toolset=template.toolset,
            system_prompt=template.system_prompt,
            strategy=template.strategy,
            strategy_config=template.strategy_config,
            max_steps=template.max_steps,
        )
        scores, experiments = [], []
        for dataset in datasets:
            experiment = experiment_create(
                agent=agent,
                dataset=dataset,
                limit=limit,
                name=f"search {job.id} candidate {index} on {dataset.name}",
            )
            experiment = experiment_run_here(experiment=experiment)
            scores.append(float((experiment.scores or {}).get("accuracy") or 0.0))
            experiments.append(experiment.id)
        shutil.rmtree(folder, ignore_errors=True)  # temporary: deleted as soon as it is scored
        rows.append(
            {
                "index": index,
                "settings": settings,
                "yaml": text,
                "scores": scores,
                "experiments": experiments,
            }
        )
        context.metric(candidates=rows)
        context.log(
            f"candidate {index}: "
            + ", ".join(f"{d.name} {s:.3f}" for d, s in zip(datasets, scores, strict=True))
        )
        return scores

    try:
        if config.get("strategy") == "cma":
            import cma

            paths = list(config["space"])
            bounds = [
                [config["space"][p]["low"] for p in paths],
                [config["space"][p]["high"] for p in paths],
            ]
            x0 = [(lo + hi) / 2 for lo, hi in zip(*bounds, strict=True)]
            budget = int(config.get("samples", 8))
            options = {
                "bounds": bounds,
                "seed": int(config.get("seed", 0)) + 1,
                "popsize": max(2, min(4, budget)),
                "verbose": -9,
            }
            sigma = 0.3 * max(hi - lo for lo, hi in zip(*bounds, strict=True))
            es = cma.CMAEvolutionStrategy(x0, sigma, options)
            while len(rows) < budget and not es.stop():
                xs = es.ask()  # a whole generation: CMA-ES learns from all of it
                fitness = [
                    -sum(evaluate({p: round(float(v), 4) for p, v in zip(paths, x, strict=True)}))
                    for x in xs
                ]
                es.tell(xs, fitness)
                context.progress(min(1.0, len(rows) / budget), f"{len(rows)}/{budget} candidates")
        else:
            candidates = list(_candidates(config))
            for number, settings in enumerate(candidates, start=1):
                evaluate(settings)
                context.progress(number / len(candidates), f"{number}/{len(candidates)} candidates")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    front = pareto_front([r["scores"] for r in rows])
    for row, on_front in zip(rows, front, strict=True):
        row["pareto"] = on_front
    best = max(rows, key=lambda r: sum(r["scores"])) if rows else None
    context.metric(
        candidates=rows, datasets=[d.name for d in datasets], best=best["index"] if best else None
    )
