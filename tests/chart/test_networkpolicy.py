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

    def test_selects_the_backup_family_of_this_release(self):
        assert _policy()["spec"]["podSelector"] == {
            "matchLabels": {"app.kubernetes.io/name": "agent-bom", "app.kubernetes.io/instance": "agent-bom"},
            "matchExpressions": [{
                "key": "app.kubernetes.io/component", "operator": "In",
                "values": ["control-plane-backup", "control-plane-restore", "control-plane-restore-drill",
                           "control-plane-retention", "control-plane-backup-test"],
            }],
        }

    def test_no_ingress_rule(self):
        assert "ingress" not in _policy()["spec"]

    def test_dns_rule_allows_port_53_udp_and_tcp(self):
        dns = _policy()["spec"]["egress"][0]
        assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]

    def test_dns_rule_targets_kube_dns(self):
        dns = _policy()["spec"]["egress"][0]
        assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}

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


def _rules(**overrides: Any) -> list[dict[str, Any]]:
    return _policy(**overrides)["spec"]["egress"]


def _cidrs(rule: dict[str, Any]) -> list[str]:
    return [peer["ipBlock"]["cidr"] for peer in rule["to"] if "ipBlock" in peer]


class TestCredentialEndpoints:
    """EKS Pod Identity, IMDS and NodeLocal DNSCache live on link-local addresses that the
    object-storage rule (port 443) does not open."""

    TEMPLATE = NETWORKPOLICY_TEMPLATE

    def test_pod_identity_agent_on_ipv6(self):
        rules = _rules(podIdentity={"enabled": True}, ipFamilies=["IPv6"])
        assert [_cidrs(r) for r in rules if r["ports"] == [{"protocol": "TCP", "port": 80}]] == [["fd00:ec2::23/128"]]

    def test_pod_identity_agent_dual_stack(self):
        rules = _rules(podIdentity={"enabled": True}, ipFamilies=["IPv4", "IPv6"])
        assert ["169.254.170.23/32", "fd00:ec2::23/128"] in [_cidrs(r) for r in rules]

    def test_instance_metadata_service(self):
        rules = _rules(instanceMetadata={"enabled": True})
        assert {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}], "ports": [{"protocol": "TCP", "port": 80}]} in rules

    def test_instance_metadata_service_on_ipv6(self):
        rules = _rules(instanceMetadata={"enabled": True}, ipFamilies=["IPv6"])
        assert ["fd00:ec2::254/128"] in [_cidrs(r) for r in rules]

    def test_link_local_credential_endpoints_closed_by_default(self):
        assert [r for r in _rules() if r["ports"] == [{"protocol": "TCP", "port": 80}]] == []

    def test_node_local_dns_cache(self):
        rules = _rules(dns={"nodeLocal": {"enabled": True}})
        assert {"to": [{"ipBlock": {"cidr": "169.254.20.10/32"}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]} in rules

    def test_node_local_dns_cache_ipv6_address(self):
        rules = _rules(dns={"nodeLocal": {"enabled": True, "addresses": ["fd00::a"]}})
        assert ["fd00::a/128"] in [_cidrs(r) for r in rules]

    def test_kube_dns_stays_allowed_with_node_local_dns(self):
        rules = _rules(dns={"nodeLocal": {"enabled": True}})
        assert rules[0]["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}


class TestIpFamilies:
    TEMPLATE = NETWORKPOLICY_TEMPLATE

    def _storage(self, **overrides: Any) -> list[str]:
        (rule,) = [r for r in _rules(**overrides) if r["ports"] == [{"protocol": "TCP", "port": 443}]]
        return _cidrs(rule)

    def test_ipv4_only_by_default(self):
        assert self._storage() == ["0.0.0.0/0"]

    def test_anywhere_includes_ipv6_on_a_dual_stack_cluster(self):
        assert self._storage(ipFamilies=["IPv4", "IPv6"]) == ["0.0.0.0/0", "::/0"]

    def test_narrow_cidrs_are_kept_as_they_are(self):
        assert self._storage(ipFamilies=["IPv6"], objectStorage={"cidrs": ["2600:1f18::/32"], "ports": [443]}) == ["2600:1f18::/32"]
