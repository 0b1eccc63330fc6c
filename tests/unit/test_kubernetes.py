"""deploy/kubernetes: valid against Kubernetes' own schemas (kubernetes-validate, offline), and consistent
with stationmon: the config parses, replicas = shards x 2, every shard gets exactly two pods, selectors
match, the config is mounted where the command reads it."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stationmon.config import parse_config_text
from stationmon.domain.shards import parse_shard

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def _one(kind: str) -> dict[str, Any]:
    [doc] = [d for d in _documents() if d["kind"] == kind]
    return doc


def test_the_manifests_are_the_four_kinds() -> None:
    assert Counter(d["kind"] for d in _documents()) == {
        "ConfigMap": 1,
        "Service": 1,
        "StatefulSet": 1,
        "PodDisruptionBudget": 1,
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(version: str) -> None:
    for doc in _documents():
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError with the path


def test_a_broken_manifest_is_refused() -> None:  # the validation can fail
    doc = _one("StatefulSet")
    doc["spec"]["replicas"] = "four"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def _container() -> dict[str, Any]:
    [container] = _one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    return container


def _env(name: str) -> str:
    [value] = [e["value"] for e in _container()["env"] if e["name"] == name]
    return str(value)


def test_the_configmap_is_a_valid_stationmon_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFLUX_TOKEN", "x")
    monkeypatch.setenv("STATIONMON_TOKEN", "y")
    monkeypatch.delenv("STATIONMON_SHARD", raising=False)
    config = parse_config_text(_one("ConfigMap")["data"]["stationmon.toml"], "stationmon.toml")
    assert config.cluster.notify == "alertmanager" and config.alerting.alertmanager
    assert config.http.host == "0.0.0.0" and config.http.port == 9640  # the probes reach it
    assert config.mqtt is not None and config.mqtt.share_group and "{hostname}" not in config.mqtt.client_id
    assert config.influxdb.spool_dir.startswith("/var/lib/stationmon")  # on the pod's volume
    mounts = {m["name"]: m["mountPath"] for m in _container()["volumeMounts"]}
    assert config.state_dir.startswith(mounts["data"]) and config.influxdb.spool_dir.startswith(mounts["data"])
    assert f"-c {mounts['config']}/stationmon.toml" in _container()["args"][0]


def test_replicas_are_shards_times_two_and_each_shard_gets_two_pods() -> None:
    spec = _one("StatefulSet")["spec"]
    shards = int(_env("STATIONMON_SHARDS"))
    assert spec["replicas"] == 2 * shards
    # run the container's start script with `exec stationmon` replaced by printing the shard it sets
    script = _container()["args"][0].replace("exec stationmon", "echo $STATIONMON_SHARD; : ")
    served: Counter[int] = Counter()
    for ordinal in range(spec["replicas"]):
        for env in ({"POD_INDEX": str(ordinal)}, {"HOSTNAME": f"stationmon-{ordinal}"}):
            out = subprocess.run(
                ["sh", "-c", script],
                env={"STATIONMON_SHARDS": str(shards), **env},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            shard = parse_shard(out)
            assert shard.count == shards and shard.index == ordinal % shards
        served[shard.index] += 1
    assert served == {i: 2 for i in range(shards)}


def test_selectors_pick_the_statefulsets_pods() -> None:
    labels = _one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert _one("StatefulSet")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _one("Service")["spec"]["selector"].items() <= labels.items()
    assert _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _one("StatefulSet")["spec"]["serviceName"] == _one("Service")["metadata"]["name"]
    assert _one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1  # a shard never loses both replicas
    volumes = {v["name"]: v for v in _one("StatefulSet")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == _one("ConfigMap")["metadata"]["name"]
