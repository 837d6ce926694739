"""Metrics accumulated over batches: averages, running statistics (Welford), accuracy,
precision / recall / F1 (binary or per class, with micro / macro / weighted averaging) and the
confusion matrix. Their accumulators are ``MetricState``s (long-term states), so they can be
updated inside a jitted step.

Example::

    acc = brainstate.nn.AccuracyMetric()
    for x, y in batches:
        acc.update(logits=model(x), labels=y)
    acc.compute()
"""

from __future__ import annotations

import typing as tp
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from .._state import LongTermState

__all__ = ['MetricState', 'Metric', 'AverageMetric', 'WelfordMetric', 'AccuracyMetric',
           'MultiMetric', 'PrecisionMetric', 'RecallMetric', 'F1ScoreMetric', 'ConfusionMatrix']


class MetricState(LongTermState):
    """The state class of metric accumulators."""

    __module__ = 'brainstate.nn'


class Metric:
    """Base class: ``reset()``, ``update(**kwargs)``, ``compute()``."""

    __module__ = 'brainstate.nn'

    def reset(self) -> None:
        raise NotImplementedError('Must override `reset()` method.')

    def update(self, **kwargs) -> None:
        raise NotImplementedError('Must override `update()` method.')

    def compute(self):
        raise NotImplementedError('Must override `compute()` method.')


def _is_scalar(v) -> bool:
    return isinstance(v, (int, float))


class AverageMetric(Metric):
    """The mean of every value passed as keyword ``argname`` so far."""

    __module__ = 'brainstate.nn'

    def __init__(self, argname: str = 'values'):
        self.argname = argname
        self.total = MetricState(jnp.array(0, dtype=jnp.float32))
        self.count = MetricState(jnp.array(0, dtype=jnp.int32))

    def reset(self) -> None:
        self.total.value = jnp.array(0, dtype=jnp.float32)
        self.count.value = jnp.array(0, dtype=jnp.int32)

    def update(self, **kwargs) -> None:
        if self.argname not in kwargs:
            raise TypeError(f"Expected keyword argument '{self.argname}'")
        values = kwargs[self.argname]
        self.total.value += values if _is_scalar(values) else values.sum()
        self.count.value += 1 if _is_scalar(values) else values.size

    def compute(self):
        return self.total.value / self.count.value


@partial(jax.tree_util.register_dataclass,
         data_fields=['mean', 'standard_error_of_mean', 'standard_deviation'], meta_fields=[])
@dataclass
class Statistics:
    """What :class:`WelfordMetric` computes."""

    __module__ = 'brainstate.nn'
    mean: jnp.float32
    standard_error_of_mean: jnp.float32
    standard_deviation: jnp.float32


class WelfordMetric(Metric):
    """Running mean, standard deviation and standard error of the mean (Welford's merge of
    batch statistics)."""

    __module__ = 'brainstate.nn'

    def __init__(self, argname: str = 'values'):
        self.argname = argname
        self.count = MetricState(jnp.array(0, dtype=jnp.int32))
        self.mean = MetricState(jnp.array(0, dtype=jnp.float32))
        self.m2 = MetricState(jnp.array(0, dtype=jnp.float32))

    def reset(self) -> None:
        self.count.value = jnp.array(0, dtype=jnp.int32)
        self.mean.value = jnp.array(0, dtype=jnp.float32)
        self.m2.value = jnp.array(0, dtype=jnp.float32)

    def update(self, **kwargs) -> None:
        if self.argname not in kwargs:
            raise TypeError(f"Expected keyword argument '{self.argname}'")
        values = kwargs[self.argname]
        n = 1 if _is_scalar(values) else values.size
        before = self.count.value
        self.count.value += n
        delta = (values if _is_scalar(values) else values.mean()) - self.mean.value
        self.mean.value += delta * n / self.count.value
        batch_m2 = 0.0 if _is_scalar(values) else values.var() * n
        self.m2.value += batch_m2 + delta * delta * n * before / self.count.value

    def compute(self) -> Statistics:
        std = (self.m2.value / self.count.value) ** 0.5
        return Statistics(mean=self.mean.value, standard_error_of_mean=std / self.count.value ** 0.5,
                          standard_deviation=std)


class AccuracyMetric(AverageMetric):
    """The fraction of samples whose ``argmax(logits)`` equals the integer ``labels``."""

    __module__ = 'brainstate.nn'

    def update(self, *, logits, labels, **_) -> None:
        if logits.ndim != labels.ndim + 1:
            raise ValueError(f'Expected logits.ndim==labels.ndim+1, got {logits.ndim} and '
                             f'{labels.ndim}')
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError(f'Expected integer labels.dtype, got {labels.dtype}')
        super().update(values=logits.argmax(axis=-1) == jnp.astype(labels, jnp.int32))


def _check_average(average):
    if average not in ('micro', 'macro', 'weighted'):
        raise ValueError(f"`average` must be one of 'micro', 'macro', 'weighted'. Got "
                         f"{average!r}.")


def _ratio(num, den):
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1),
                     jnp.zeros_like(den, dtype=jnp.float32))


class _Counts(Metric):
    """True positives and one kind of error, binary (``num_classes=None``: class 1 positive)
    or per class."""

    _error = ''

    def __init__(self, num_classes: int | None = None, average: str = 'macro'):
        _check_average(average)
        self.num_classes, self.average = num_classes, average
        self.reset()

    def _zeros(self):
        return (jnp.array(0, dtype=jnp.int32) if self.num_classes is None
                else jnp.zeros(self.num_classes, dtype=jnp.int32))

    def reset(self) -> None:
        for name in ('true_positives', self._error) + self._extra:
            if name in vars(self):
                getattr(self, name).value = self._zeros()
            else:
                setattr(self, name, MetricState(self._zeros()))

    _extra = ()

    def _micro(self, err):
        tp = jnp.sum(self.true_positives.value)
        total = tp + jnp.sum(err)
        return jnp.where(total > 0, tp / jnp.where(total > 0, total, 1), jnp.float32(0.0))


class PrecisionMetric(_Counts):
    """Precision ``tp / (tp + fp)``: binary, or per class averaged by ``average``."""

    __module__ = 'brainstate.nn'
    _error = 'false_positives'

    @property
    def _extra(self):
        return () if self.num_classes is None else ('support',)

    def update(self, *, predictions, labels, **_) -> None:
        if self.num_classes is None:
            self.true_positives.value += jnp.sum((predictions == 1) & (labels == 1))
            self.false_positives.value += jnp.sum((predictions == 1) & (labels == 0))
            return
        classes = jnp.arange(self.num_classes)
        p = jnp.ravel(predictions)[:, None] == classes
        t = jnp.ravel(labels)[:, None] == classes
        self.true_positives.value += jnp.sum(p & t, axis=0).astype(jnp.int32)
        self.false_positives.value += jnp.sum(p & ~t, axis=0).astype(jnp.int32)
        self.support.value += jnp.sum(t, axis=0).astype(jnp.int32)

    def compute(self):
        tp, fp = self.true_positives.value, self.false_positives.value
        precision = _ratio(tp, tp + fp)
        if self.num_classes is None:
            return precision
        if self.average == 'macro':
            return jnp.mean(precision)
        if self.average == 'micro':
            return self._micro(fp)
        support = self.support.value
        total = jnp.sum(support)
        return jnp.where(total > 0, jnp.sum(precision * support) / jnp.where(total > 0, total, 1),
                         jnp.float32(0.0))


class RecallMetric(_Counts):
    """Recall ``tp / (tp + fn)``: binary, or per class averaged by ``average``."""

    __module__ = 'brainstate.nn'
    _error = 'false_negatives'

    def update(self, *, predictions, labels, **_) -> None:
        if self.num_classes is None:
            self.true_positives.value += jnp.sum((predictions == 1) & (labels == 1))
            self.false_negatives.value += jnp.sum((predictions == 0) & (labels == 1))
            return
        classes = jnp.arange(self.num_classes)
        p = jnp.ravel(predictions)[:, None] == classes
        t = jnp.ravel(labels)[:, None] == classes
        self.true_positives.value += jnp.sum(p & t, axis=0).astype(jnp.int32)
        self.false_negatives.value += jnp.sum(~p & t, axis=0).astype(jnp.int32)

    def compute(self):
        tp, fn = self.true_positives.value, self.false_negatives.value
        den = tp + fn
        recall = _ratio(tp, den)
        if self.num_classes is None:
            return recall
        if self.average == 'macro':
            return jnp.mean(recall)
        if self.average == 'micro':
            return self._micro(fn)
        total = jnp.sum(den)
        return jnp.where(total > 0, jnp.sum(recall * den) / jnp.where(total > 0, total, 1),
                         jnp.float32(0.0))


class F1ScoreMetric(Metric):
    """F1 score, the harmonic mean of precision and recall (per class, then averaged)."""

    __module__ = 'brainstate.nn'

    def __init__(self, num_classes: int | None = None, average: str = 'macro'):
        self.precision_metric = PrecisionMetric(num_classes, average)
        self.recall_metric = RecallMetric(num_classes, average)

    def reset(self) -> None:
        self.precision_metric.reset()
        self.recall_metric.reset()

    def update(self, *, predictions, labels, **_) -> None:
        self.precision_metric.update(predictions=predictions, labels=labels)
        self.recall_metric.update(predictions=predictions, labels=labels)

    def compute(self):
        pm = self.precision_metric
        if pm.num_classes is None or pm.average == 'micro':
            p, r = pm.compute(), self.recall_metric.compute()
            return jnp.where(p + r > 0, 2 * p * r / jnp.where(p + r > 0, p + r, 1),
                             jnp.float32(0.0))
        tp, fp = pm.true_positives.value, pm.false_positives.value
        fn = self.recall_metric.false_negatives.value
        p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = _ratio(2 * p * r, p + r)
        if pm.average == 'macro':
            return jnp.mean(f1)
        support = pm.support.value
        total = jnp.sum(support)
        return jnp.where(total > 0, jnp.sum(f1 * support) / jnp.where(total > 0, total, 1),
                         jnp.float32(0.0))


class ConfusionMatrix(Metric):
    """Counts ``matrix[true, predicted]`` over ``num_classes`` classes."""

    __module__ = 'brainstate.nn'

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.matrix = MetricState(jnp.zeros((num_classes, num_classes), dtype=jnp.int32))

    def reset(self) -> None:
        self.matrix.value = jnp.zeros((self.num_classes, self.num_classes), dtype=jnp.int32)

    def update(self, *, predictions, labels, **_) -> None:
        predictions = jnp.asarray(predictions, dtype=jnp.int32).flatten()
        labels = jnp.asarray(labels, dtype=jnp.int32).flatten()
        n = self.num_classes
        if not any(isinstance(v, jax.core.Tracer) for v in (predictions, labels)):
            if jnp.any((predictions < 0) | (predictions >= n)):
                raise ValueError(f'Predictions contain values outside [0, {n})')
            if jnp.any((labels < 0) | (labels >= n)):
                raise ValueError(f'Labels contain values outside [0, {n})')
        classes = jnp.arange(n)
        t = (labels[:, None] == classes).astype(jnp.int32)
        p = (predictions[:, None] == classes).astype(jnp.int32)
        self.matrix.value = self.matrix.value + t.T @ p

    def compute(self):
        return self.matrix.value


class MultiMetric(Metric):
    """Several named metrics updated and computed together (``compute()`` gives a dict)."""

    __module__ = 'brainstate.nn'

    def __init__(self, **metrics):
        reserved = {'reset', 'update', 'compute', '_metric_names'}
        for name in metrics:
            if name in reserved:
                raise ValueError(f"Metric name '{name}' is reserved for class methods. Please "
                                 f"use a different name. Reserved names: {reserved}")
        self._metric_names = []
        for name, metric in metrics.items():
            if not isinstance(metric, Metric):
                raise TypeError(f"All metrics must be instances of Metric, got {type(metric)} "
                                f"for metric '{name}'")
            self._metric_names.append(name)
            vars(self)[name] = metric

    def reset(self) -> None:
        for name in self._metric_names:
            getattr(self, name).reset()

    def update(self, **updates) -> None:
        for name in self._metric_names:
            getattr(self, name).update(**updates)

    def compute(self) -> dict:
        return {name: getattr(self, name).compute() for name in self._metric_names}
