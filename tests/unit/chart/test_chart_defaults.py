"""Chart defaults live in values.yaml. A template that must default a key itself (`helm upgrade
--reuse-values` from 0.1.0 renders with 0.1.0's values.yaml, which lacks every key added since)
takes the default from one helper, agent-bom.defaults in templates/_helpers.tpl: each of its
values equals values.yaml's and no template carries a literal default of its own (read as
text; what renders is tests/chart/test_defaults.py's)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.chart.helm_render import CHART_DIR

HELPERS = CHART_DIR / "templates" / "_helpers.tpl"
VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())


def helper_defaults() -> dict[str, Any]:
    """The body of agent-bom.defaults (plain YAML, relative to controlPlane.backup)."""
    match = re.search(r'\{\{- define "agent-bom.defaults" -\}\}\n(.*?)\{\{- end \}\}', HELPERS.read_text(), re.DOTALL)
    assert match, "agent-bom.defaults not found in _helpers.tpl"
    return yaml.safe_load(match.group(1))


def _leaves(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every leaf; lists and the resources maps count as one value each."""
    leaves = []
    for key, value in node.items():
        path = (*prefix, key)
        if isinstance(value, dict) and key != "resources":
            leaves += _leaves(value, path)
        else:
            leaves.append((path, value))
    return leaves


def _values_yaml_default(path: tuple[str, ...]) -> Any:
    node: Any = VALUES["controlPlane"]["backup"]
    for key in path:
        node = node[key]
    return node


DEFAULTS = _leaves(helper_defaults())

#: `dig KEYS... LITERAL MAP` or `| default LITERAL` / `(default LITERAL ...)`, where LITERAL is a non-empty string, a number
#: other than 0, true, or a (list ...) / (dict ...) with elements
_LITERAL = r'"[^"]+"|[1-9][0-9]*|true|\((?:list|dict) [^)]+\)'
LITERAL_DEFAULT = re.compile(
    rf'\bdig(?: "[^"]*")+ (?P<dug>{_LITERAL}) +(?:\$[\w.]*|\.[\w.]*) *(?:-?\}}\}}|\)|\|)'
    rf'|\| *default (?P<default>{_LITERAL})|\(default (?P<call>{_LITERAL}) '
)
#: literal defaults that are not a copy of a values.yaml default, and why
NOT_VALUES_DEFAULTS = {
    '"in-cluster-restore"': "restore.operator: an empty operator is named in-cluster-restore",
    '"unset"': "a sentinel telling an unset allowPrivilegeEscalation from false",
    "true": 'dig "database" true: a helper argument ("database" false leaves the CA volume out)',
}



class TestOneSourceOfDefaults:
    def test_helper_has_defaults(self):
        assert len(DEFAULTS) > 20

    @pytest.mark.parametrize(("path", "value"), DEFAULTS, ids=[".".join(p) for p, _ in DEFAULTS])
    def test_helper_default_equals_values_yaml(self, path, value):
        assert value == _values_yaml_default(path)

    def test_guard_sees_a_literal_default(self):
        """Guards the next test: the pattern finds the literals this change removed."""
        assert LITERAL_DEFAULT.search('{{ dig "keepLast" 7 $r | int64 }}')
        assert LITERAL_DEFAULT.search('{{ $pg.timeout | default 10 | quote }}')
        assert not LITERAL_DEFAULT.search('{{ dig "keepLast" $defaults.keepLast $r | int64 }}')

    @pytest.mark.parametrize("template", sorted(p.name for p in (CHART_DIR / "templates").rglob("*") if p.is_file()))
    def test_no_literal_default_outside_the_helper(self, template):
        (path,) = (p for p in (CHART_DIR / "templates").rglob(template) if p.is_file())
        text = path.read_text()
        if path == HELPERS:
            text = re.sub(r'\{\{- define "agent-bom.defaults" -\}\}.*?\{\{- end \}\}', "", text, flags=re.DOTALL)
        code = re.sub(r"\{\{-? /\*.*?\*/ -?\}\}", "", text, flags=re.DOTALL)  # comments
        found = [m.group(0) for m in LITERAL_DEFAULT.finditer(code) if (m.group("dug") or m.group("default") or m.group("call")) not in NOT_VALUES_DEFAULTS]
        assert found == [], "take these defaults from agent-bom.defaults (templates/_helpers.tpl)"
