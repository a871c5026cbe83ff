"""The local equivalent of `ct lint --config ci/ct.yaml`: yamale (Chart.yaml schema) and
yamllint (ci/lintconf.yaml); `helm lint --strict` for every values file, Helm 3 and 4, is
tests/chart/test_helm_lint.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yamale
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.chart.helm_render import CHART_DIR, REPO

CT_CONFIG = REPO / "ci" / "ct.yaml"
LINT_CONF = REPO / "ci" / "lintconf.yaml"
CHART_SCHEMA = REPO / "ci" / "chart_schema.yaml"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
LINT_VALUES = CI_VALUES + EXAMPLES
LINT_IDS = [f"{p.parent.name}/{p.stem}" for p in LINT_VALUES]
YAML_FILES = [CHART_DIR / "Chart.yaml", CHART_DIR / "values.yaml", CT_CONFIG, LINT_CONF, CHART_SCHEMA,
              *LINT_VALUES, *sorted((CHART_DIR / "tests").glob("*_test.yaml"))]


@pytest.mark.unit
class TestChartTestingConfig:
    def test_ct_points_at_the_shipped_lint_config_and_schema(self):
        config = yaml.safe_load(CT_CONFIG.read_text())
        assert (config["lint-conf"], config["chart-yaml-schema"]) == ("ci/lintconf.yaml", "ci/chart_schema.yaml")

    def test_ct_finds_the_chart(self):
        config = yaml.safe_load(CT_CONFIG.read_text())
        assert [(REPO / d / "agent-bom" / "Chart.yaml").is_file() for d in config["chart-dirs"]] == [True]

    def test_ct_has_values_files_to_lint(self):
        assert len(CI_VALUES) >= 3


@pytest.mark.unit
class TestYamale:
    def test_chart_yaml_matches_the_chart_testing_schema(self):
        schema = yamale.make_schema(str(CHART_SCHEMA))
        yamale.validate(schema, yamale.make_data(str(CHART_DIR / "Chart.yaml")))

    def test_schema_rejects_a_chart_without_version(self, tmp_path):
        """Guards the check above."""
        chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
        del chart["version"]
        bad = tmp_path / "Chart.yaml"
        bad.write_text(yaml.safe_dump(chart))
        with pytest.raises(yamale.YamaleError):
            yamale.validate(yamale.make_schema(str(CHART_SCHEMA)), yamale.make_data(str(bad)))


def _chart() -> dict:
    return yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())


def _annotation(name: str):
    return yaml.safe_load(_chart()["annotations"][name])


@pytest.mark.unit
class TestChartMetadata:
    """Chart.yaml as Artifact Hub reads it (artifacthub.io/docs/topics/annotations/helm)."""

    @pytest.mark.parametrize(
        ("key", "expected"),
        [("apiVersion", "v2"), ("name", "agent-bom"), ("version", "0.2.0"), ("appVersion", "0.2.0"), ("type", "application")],
        ids=lambda v: v,
    )
    def test_chart_field(self, key, expected):
        assert _chart()[key] == expected

    def test_kube_version_is_as_low_as_cronjob_time_zone_allows(self):
        assert _chart()["kubeVersion"] == ">=1.27.0-0"

    @pytest.mark.parametrize("key", ["home", "icon"])
    def test_links_point_at_the_project(self, key):
        assert _chart()[key].startswith("https://")

    def test_sources_name_the_repository(self):
        assert _chart()["sources"][0] == _chart()["home"]

    def test_maintainers_have_a_url(self):
        assert all(m.get("url", "").startswith("https://") for m in _chart()["maintainers"])

    def test_the_icon_is_in_the_repository_at_its_url(self):
        path = _chart()["icon"].split("/main/", 1)[1]
        assert (REPO / path).read_text().startswith("<svg")

    @pytest.mark.parametrize(
        ("annotation", "expected"),
        [("artifacthub.io/license", "Apache-2.0"), ("artifacthub.io/category", "database"),
         ("artifacthub.io/prerelease", "false")],
        ids=["license", "category", "prerelease"],
    )
    def test_artifact_hub_annotation(self, annotation, expected):
        assert _chart()["annotations"][annotation] == expected

    def test_artifact_hub_images_name_the_job_image_at_the_app_version(self):
        assert [(i["name"], i["image"]) for i in _annotation("artifacthub.io/images")] == [
            ("agent-bom-backup", f"ghcr.io/agent-bom/agent-bom-backup:{_chart()['appVersion']}")]

    def test_artifact_hub_images_list_both_platforms(self):
        assert _annotation("artifacthub.io/images")[0]["platforms"] == ["linux/amd64", "linux/arm64"]

    def test_artifact_hub_links_include_support(self):
        assert "support" in [link["name"] for link in _annotation("artifacthub.io/links")]

    def test_changes_are_typed(self):
        assert {c["kind"] for c in _annotation("artifacthub.io/changes")} <= {"added", "changed", "fixed", "removed", "security"}

    def test_no_sign_key_for_a_keyless_signature(self):
        """signKey describes a static public key (its url is mandatory); keyless cosign has none,
        and Artifact Hub detects a cosign signature on an OCI chart by itself."""
        assert "artifacthub.io/signKey" not in _chart()["annotations"]

    def test_readme_says_how_to_verify_the_keyless_signature(self):
        readme = (CHART_DIR / "README.md").read_text()
        assert "cosign verify" in readme and "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in readme


@pytest.mark.unit
class TestYamllint:
    @pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
    def test_file_is_lint_clean(self, path: Path):
        config = YamlLintConfig(file=str(LINT_CONF))
        problems = [f"{p.line}:{p.column} {p.message} ({p.rule})" for p in linter.run(path.read_text(), config, str(path))]
        assert problems == []

    def test_lint_config_catches_trailing_spaces(self):
        """Guards the check above."""
        config = YamlLintConfig(file=str(LINT_CONF))
        assert [p.rule for p in linter.run("key: value   \n", config)] == ["trailing-spaces"]
