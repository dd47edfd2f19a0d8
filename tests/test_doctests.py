"""The examples in the docstrings of the data, offline and units modules run and print what
they say (each module's own doctests; other test files run some of them too, this one runs
every module, so that no example goes stale unnoticed)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import atmocorrect.data
import atmocorrect.offline

MODULES = sorted(
    {"atmocorrect.units", "atmocorrect.models.offline_quantile", "atmocorrect.data",
     "atmocorrect.offline"}
    | {f"{pkg.__name__}.{m.name}" for pkg in (atmocorrect.data, atmocorrect.offline)
       for m in pkgutil.iter_modules(pkg.__path__)}
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail"
