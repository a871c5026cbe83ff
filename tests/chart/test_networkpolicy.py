"""templates/networkpolicy.yaml: no ingress; egress to DNS, the database and S3/STS only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import NETWORKPOLICY_TEMPLATE, backup_values, render_chart

ENABLED = {"enabled": True, "database": {"cidrs": ["10.20.0.0/16"]}}


def _policy(**overrides: Any) -> dict[str, Any]:
    (doc,) = render_chart(backup_values(networkPolicy={**ENABLED, **overrides}), show_only=[NETWORKPOLICY_TEMPLATE])
    return doc


class TestNetworkPolicy:
    TEMPLATE = NETWORKPOLICY_TEMPLATE

    def test_off_by_default(self):
        assert render_chart(backup_values(), show_only=[self.TEMPLATE]) == []

    def test_kind(self):
        assert _policy()["kind"] == "NetworkPolicy"

    def test_selects_the_backup_family_of_this_release(self):
        assert _policy()["spec"]["podSelector"] == {
            "matchLabels": {"app.kubernetes.io/name": "agent-bom", "app.kubernetes.io/instance": "agent-bom"},
            "matchExpressions": [{
                "key": "app.kubernetes.io/component", "operator": "In",
                "values": ["control-plane-backup", "control-plane-restore-drill", "control-plane-backup-test"],
            }],
        }

    def test_denies_all_ingress(self):
        spec = _policy()["spec"]
        assert ("Ingress" in spec["policyTypes"], "ingress" in spec) == (True, False)

    def test_restricts_egress(self):
        assert "Egress" in _policy()["spec"]["policyTypes"]

    def test_dns_rule_allows_port_53_udp_and_tcp(self):
        dns = _policy()["spec"]["egress"][0]
        assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]

    def test_dns_rule_targets_kube_dns(self):
        dns = _policy()["spec"]["egress"][0]
        assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}

    def test_database_rule(self):
        database = _policy()["spec"]["egress"][1]
        assert database == {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 5432}]}

    def test_database_port_follows_value(self):
        database = _policy(database={"cidrs": ["10.20.0.0/16"], "port": 6432})["spec"]["egress"][1]
        assert database["ports"] == [{"protocol": "TCP", "port": 6432}]

    def test_object_storage_rule_defaults_to_https_anywhere(self):
        storage = _policy()["spec"]["egress"][2]
        assert storage == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}

    def test_object_storage_rule_follows_values(self):
        storage = _policy(objectStorage={"cidrs": ["10.30.0.0/24", "10.31.0.0/24"], "ports": [9000]})["spec"]["egress"][2]
        assert storage == {
            "to": [{"ipBlock": {"cidr": "10.30.0.0/24"}}, {"ipBlock": {"cidr": "10.31.0.0/24"}}],
            "ports": [{"protocol": "TCP", "port": 9000}],
        }

    def test_exactly_three_egress_rules_by_default(self):
        assert len(_policy()["spec"]["egress"]) == 3

    def test_extra_egress_is_appended(self):
        extra = {"to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "agent-bom"}}}], "ports": [{"port": 5432}]}
        assert _policy(extraEgress=[extra])["spec"]["egress"][-1] == extra

    @pytest.mark.parametrize(
        "overrides",
        [{"database": {"cidrs": []}, "extraEgress": [{"to": [{"podSelector": {}}]}]}],
        ids=["in-cluster-database-by-selector"],
    )
    def test_extra_egress_can_replace_database_cidrs(self, overrides):
        egress = _policy(**overrides)["spec"]["egress"]
        assert [r["to"][0] for r in egress][-1] == {"podSelector": {}}
