"""The Docker sandbox on a real engine: what an idea in a container can see, write and reach; OOM
reported as such; containers removed however the run ends; the GPU request; choosing it.

The attack and OOM tests run the real runner (``core.app.seed_job.run_seed``) with an idea written
into a throwaway workspace, cached baselines and a tiny dataset, so the container is exactly what a
job of the docker executor starts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from core.app.seed_job import run_seed
from core.common.config import RunConfig
from core.results.cache import read_predictions, result_key
from core.run.resolve import prepare_config
from core.run.runner import IdeaFailed
from core.sandbox.base import Mount, SandboxSpec, SandboxUnavailable
from core.sandbox.docker import DockerSandbox, list_containers
from core.sandbox.docker_config import ContainerUser, DockerSettings, container_config, gpu_request
from core.sandbox.select import default_sandbox
from tests.conftest import REPO, in_ci, make_dataset, run_cli, wait_until
from tests.tiny_w2s import fake_baselines, tiny_config

pytest_plugins = ["tests.docker_engine"]  # the engine, image and workspace fixtures

SECRET = "sk-ant-docker-redteam-51c2"
DS = "dockertiny"


def _idea(ws: Path, name: str, body: str) -> None:
    folder = ws / "ideas" / name
    folder.mkdir(parents=True)
    (folder / "run.py").write_text(textwrap.dedent(body))


@pytest.fixture
def seeded(docker_ws: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A tiny dataset with cached baselines, planted secrets and a host TCP server; the seed config."""
    make_dataset(docker_ws, DS)
    cfg = prepare_config(tiny_config(DS))
    fake_baselines(docker_ws, cfg, [42], weak_acc=0.5, strong_acc=0.9)
    state = docker_ws / ".w2s"
    (state / "job_secrets").mkdir(parents=True)
    (state / "operator_token").write_text(SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("W2S_RUN_TOKEN", SECRET)
    return {"ws": docker_ws, "cfg": cfg}


PROBE = '''
import glob, json, os, socket
from core.run import experiment

WS = {ws!r}
REPO = {repo!r}
DOCKER_SOCKET = {sock!r}
SECRET = {secret!r}
OUT = {out!r}


def readable(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 20)
    except OSError:
        return None


def writable(path):
    try:
        with open(path, "w") as fh:
            fh.write("x")
        return True
    except OSError:
        return False


def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    found = {{}}
    labels = []
    for root in (WS, REPO, "/tmp", "/work", "/root", "/home", "/mnt", "/srv", "/opt", "/var", os.getcwd()):
        for path in glob.glob(f"{{root}}/**/*.jsonl", recursive=True):
            body = readable(path) or b""
            if b'"label"' in body:
                labels.append(path)
    found["label_files"] = sorted(set(labels))
    found["labeled_data"] = [p for p in (f"{{WS}}/labeled_data", f"{{REPO}}/labeled_data", "labeled_data")
                             if os.path.exists(p)]
    secret_hits = []
    for path in [f"{{WS}}/.w2s/operator_token", *glob.glob("/proc/*/environ"), *glob.glob(f"{{WS}}/.w2s/**", recursive=True)]:
        body = readable(path)
        if body and SECRET.encode() in body:
            secret_hits.append(path)
    if SECRET in repr(dict(os.environ)):
        secret_hits.append("own environment")
    found["secrets"] = secret_hits
    found["proc1_environ"] = sorted(k.split(b"=")[0].decode() for k in (readable("/proc/1/environ") or b"").split(b"\\0") if k)
    found["docker_socket"] = [p for p in (DOCKER_SOCKET, "/var/run/docker.sock", "/run/docker.sock") if p and os.path.exists(p)]
    found["ws_listing"] = sorted(os.listdir(WS)) if os.path.isdir(WS) else []
    found["repo_listing"] = sorted(os.listdir(REPO)) if os.path.isdir(REPO) else None
    found["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    reach = []
    for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 80), ({host_ip!r}, {port})):
        try:
            socket.create_connection((host, port), timeout=3).close()
            reach.append(host)
        except OSError:
            pass
    found["reached"] = reach
    targets = ["/probe", "/usr/probe", "/etc/probe", f"{{REPO}}/core/probe", os.path.dirname(__file__) + "/probe",
               os.environ["W2S_IDEA_INPUTS"] + "/probe",
               "/tmp/probe", OUT + "/probe"]
    found["writable"] = [t for t in targets if writable(t)]
    found["uid"] = os.getuid()
    experiment.log("probe: " + json.dumps(found, sort_keys=True))
    return {{"test_predictions": {{r["id"]: 0.5 for r in data.test}}}}
'''


def _host_ip() -> str:
    """An address of this host other than loopback (what a container on a bridge would dial)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def test_an_idea_in_a_container_finds_no_label_secret_socket_or_network(seeded: dict[str, Any]) -> None:
    ws, cfg = seeded["ws"], seeded["cfg"]
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(4)
    port = server.getsockname()[1]
    run_dir = ws / "runs" / "probe-run"
    out = run_dir / "idea_out"
    sock = os.environ.get("DOCKER_HOST", "").removeprefix("unix://")
    _idea(ws, "probe", PROBE.format(ws=str(ws), repo=str(REPO), sock=sock, secret=SECRET, out=str(out), port=port,
                                    host_ip=_host_ip()))
    lines: list[str] = []
    try:
        result = run_seed("probe", cfg, log=lines.append, run_id="probe-run", sandbox=DockerSandbox(), run_dir=run_dir)
    finally:
        server.close()
    probe = json.loads(next(ln for ln in lines if ln.startswith("probe: "))[len("probe: "):])
    assert probe["label_files"] == [] and probe["labeled_data"] == []
    assert probe["secrets"] == [] and probe["docker_socket"] == []
    # only the paths to its own idea folder and its own output folder
    assert set(probe["ws_listing"]) <= {"ideas", "runs"}, probe["ws_listing"]
    assert "W2S_RUN_TOKEN" not in probe["proc1_environ"] and "DOCKER_HOST" not in probe["proc1_environ"]
    # only the library folders (and the venv) are there; never the repository's data or state
    assert set(probe["repo_listing"]) <= {"core", "ideas", ".venv"}, probe["repo_listing"]
    assert probe["interfaces"] == ["lo"] and probe["reached"] == []
    assert probe["writable"] == ["/tmp/probe", f"{out}/probe"], probe["writable"]
    assert probe["uid"] != 0
    assert (out / "probe").is_file() and (out / "probe").stat().st_uid == os.getuid()  # given back
    assert not (REPO / "core" / "probe").exists() and not (ws / "ideas" / "probe" / "probe").exists()
    assert result["w2s_source"] == "referee"
    kept = read_predictions(DS, "probe", result_key(cfg), 42)
    assert kept is not None and set(kept.values()) == {0.5}
    assert any("running idea probe in the sandbox (docker, isolated)" in ln for ln in lines)


OOM = '''
from core.run import experiment

def run_experiment(cfg):
    experiment.log("allocating")
    hog = bytearray(1 << 30)  # 1 GiB, every page touched: far over the limit
    return {"test_predictions": {}}
'''


def test_an_idea_over_its_memory_limit_is_reported_as_out_of_memory(seeded: dict[str, Any],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("W2S_DOCKER_MEMORY", "400m")
    _idea(seeded["ws"], "hog", OOM)
    lines: list[str] = []
    with pytest.raises(IdeaFailed, match=r"killed: out of memory \(limit 400 MiB\)"):
        run_seed("hog", seeded["cfg"], log=lines.append, run_id="hog-run", sandbox=DockerSandbox())
    assert "allocating" in lines


def test_environment_user_and_output_ownership(docker_ws: Path, docker_client: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    spec = SandboxSpec([sys.executable, "-c", "import os, json; open('out/f', 'w').write('x'); "
                        "print(json.dumps([sorted(os.environ), os.getuid(), os.getcwd()]))"],
                       mounts=[Mount(out, writable=True)], env={"PATH": "/usr/bin:/bin", "A": "1"},
                       cwd=tmp_path)
    done = DockerSandbox().run(spec, timeout=120)
    assert done.returncode == 0, done.stderr
    names, uid, cwd = json.loads(done.stdout)
    # exactly the spec's environment, plus what Docker always sets (HOSTNAME; HOME when the spec has
    # none), what Python adds for itself (LC_CTYPE) and NVIDIA_VISIBLE_DEVICES=void (no GPU given)
    assert set(names) - {"HOSTNAME", "HOME", "LC_CTYPE"} == {"A", "PATH", "NVIDIA_VISIBLE_DEVICES"}
    assert uid == (65534 if os.getuid() == 0 else os.getuid()) and cwd == str(tmp_path)
    assert (out / "f").stat().st_uid == os.getuid() and out.stat().st_uid == os.getuid()
    assert list_containers(docker_client, str(docker_ws.resolve())) == []  # removed after the run


def test_a_killed_attach_process_still_leaves_no_container(docker_ws: Path, docker_client: Any) -> None:
    box = DockerSandbox()
    spec = SandboxSpec(["/bin/sh", "-c", "sleep 300"], env={"PATH": "/usr/bin:/bin"})
    proc = box.popen(spec, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    container = box.container_of(proc)
    assert container is not None
    wait_until(lambda: docker_client.containers.get(container).status == "running", 60, what="the container running")
    os.kill(proc.pid, signal.SIGKILL)  # the host process standing for it dies without cleaning up
    proc.wait()
    assert docker_client.containers.get(container).status == "running"
    box.terminate(proc)
    assert list_containers(docker_client, str(docker_ws.resolve())) == []


def test_the_container_stops_when_its_trusted_process_dies(docker_ws: Path, docker_client: Any) -> None:
    """A runner killed with SIGKILL cannot clean up: its container still goes (the attach process
    notices its parent is gone, stops and removes it)."""
    code = ("import subprocess, sys, time\n"
            "from core.sandbox.base import SandboxSpec\n"
            "from core.sandbox.docker import DockerSandbox\n"
            "box = DockerSandbox()\n"
            "proc = box.popen(SandboxSpec(['/bin/sh', '-c', 'sleep 300'], env={'PATH': '/usr/bin:/bin'}))\n"
            "print(box.container_of(proc), flush=True)\n"
            "time.sleep(300)\n")
    runner = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    container = runner.stdout.readline().strip() if runner.stdout else ""
    assert container
    wait_until(lambda: docker_client.containers.get(container).status == "running", 60, what="the container running")
    runner.kill()
    runner.wait()
    wait_until(lambda: not list_containers(docker_client, str(docker_ws.resolve())), 30,
               what="the orphaned container removed")


def test_gpu_ids_become_a_device_request_for_exactly_those_devices() -> None:
    request, env = gpu_request({"CUDA_VISIBLE_DEVICES": "2,5", "A": "1"})
    assert request is not None
    assert request["DeviceIDs"] == ["2", "5"] and request["Capabilities"] == [["gpu"]]
    assert request.get("Count") in (None, 0)  # never count=-1 ("all")
    # renumbered inside the container; the nvidia runtime told the same ids (a CUDA image says "all")
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1", "NVIDIA_VISIBLE_DEVICES": "2,5", "A": "1"}
    assert gpu_request({"A": "1"}) == (None, {"A": "1", "NVIDIA_VISIBLE_DEVICES": "void"})
    assert gpu_request({"CUDA_VISIBLE_DEVICES": ""})[0] is None
    settings = DockerSettings.from_env({"W2S_DOCKER_MEMORY": "1g", "W2S_DOCKER_PIDS": "64", "W2S_DOCKER_CPUS": "1.5"})
    spec = SandboxSpec(["python"], env={"CUDA_VISIBLE_DEVICES": "3"})
    config = container_config(spec, settings, ContainerUser(65534, 65534, (0, 0)), name="n", labels={})
    assert [r["DeviceIDs"] for r in config["device_requests"]] == [["3"]]
    assert config["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert (config["mem_limit"], config["memswap_limit"], config["pids_limit"], config["nano_cpus"]) == (
        1 << 30, 1 << 30, 64, 1_500_000_000)
    assert config["network_mode"] == "none" and config["read_only"] and config["cap_drop"] == ["ALL"]
    assert config["user"] == "65534:65534" and config["security_opt"] == ["no-new-privileges"]
    assert config["cpu_shares"] == 1536 and "cgroup_parent" not in config  # weighs as 1.5 CPUs of threads


def test_docker_asked_for_and_unreachable_is_one_line_never_a_fallback(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path, workspace: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("W2S_SANDBOX", "docker")
    with pytest.raises(SandboxUnavailable, match=r"W2S_SANDBOX=docker: Docker engine not reachable at DOCKER_HOST=unix://"):
        default_sandbox()
    monkeypatch.delenv("W2S_SANDBOX")
    make_dataset(workspace)
    cfg = RunConfig.from_dict({"data_dir": "data/tiny", "weak_model": "demo-weak", "strong_model": "demo-strong"})
    assert run_cli("run", "--idea", "vanilla_w2s", "--executor", "docker", "--data-dir", cfg.data_dir) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DOCKER_HOST=unix://" in err and "Traceback" not in err
    assert "start the engine" in err
    assert run_cli("doctor") == 0  # bwrap works here: an absent engine only says so
    assert "--  sandbox docker: Docker engine not reachable" in capsys.readouterr().out


def test_doctor_reports_the_engine_and_image(docker_client: Any, offline_image: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("doctor") == 0
    out = capsys.readouterr().out
    assert f"ok  sandbox docker: works (engine {docker_client.version()['Version']}" in out and offline_image in out


def test_an_agent_shell_on_the_docker_executor_runs_in_a_container(docker_ws: Path, docker_client: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``W2S_SANDBOX=docker`` (what the docker executor puts in an agent job's environment) makes the
    shell tool run in a container: its own folder writable (and its files still the operator's
    afterwards), labelled data absent, no network."""
    from core.agent.budgets import Budgets, Usage
    from core.agent.tools.context import ToolContext
    from core.agent.tools.shell import run_shell

    monkeypatch.setenv("W2S_SANDBOX", "docker")
    (docker_ws / "labeled_data" / DS).mkdir(parents=True)
    (docker_ws / "labeled_data" / DS / "test.jsonl").write_text('{"label": true}\n')
    folder = docker_ws / "ideas" / "agent_d"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine\n")
    ctx = ToolContext(agent_id="d", idea_name="agent_d", folder=folder, run_dir=docker_ws / "runs" / "j",
                      budgets=Budgets(max_evals=1), usage=Usage())
    out = run_shell(ctx, f"id -u; echo new > made.txt; cat notes.txt; ls {docker_ws}/labeled_data 2>&1 | head -1; "
                         "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '")
    assert isinstance(ctx.sandbox, DockerSandbox)
    lines = out.splitlines()
    assert lines[0] == "[exit code 0]"
    assert lines[1] == str(65534 if os.getuid() == 0 else os.getuid()) and lines[2] == "mine"
    assert "No such file or directory" in lines[3] and lines[4:] == ["lo"]
    assert (folder / "made.txt").read_text() == "new\n"
    assert {p.stat().st_uid for p in (folder, folder / "made.txt", folder / "notes.txt")} == {os.getuid()}
    assert list_containers(docker_client, str(docker_ws.resolve())) == []


def test_an_image_with_its_own_python(docker_ws: Path, tmp_path: Path) -> None:
    """``W2S_DOCKER_PYTHON`` (the production image's interpreter): the host's Python is not mounted and
    the command's interpreter is the image's (here the offline image's Debian python3)."""
    settings = DockerSettings.from_env({"W2S_DOCKER_PYTHON": "/usr/bin/python3"})
    spec = SandboxSpec([sys.executable, "-c", f"import os, sys; print(sys.executable, os.path.exists({sys.base_prefix!r}))"],
                       env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    done = DockerSandbox(settings).run(spec, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["/usr/bin/python3", "False"]


def test_inputs_the_container_user_cannot_read(tmp_path: Path) -> None:
    """As root the container runs as nobody: a staged folder in the temp dir is made readable to it; a
    private folder elsewhere is refused (one line naming it), never silently opened up."""
    import shutil
    import stat

    from core.sandbox.docker import prepare_mounts

    if os.getuid() != 0:  # the mapping to nobody is what a root operator gets
        if in_ci():
            pytest.fail("CI runs as root")
        pytest.skip("needs root (chown to the container's user)")
    user = ContainerUser(65534, 65534, (os.getuid(), os.getgid()))
    staged = tmp_path / "inputs"
    staged.mkdir(mode=0o700)
    (staged / "rows.jsonl").write_text("{}\n")
    os.chmod(staged / "rows.jsonl", 0o600)
    out = tmp_path / "out"
    out.mkdir()
    given = prepare_mounts(SandboxSpec(["true"], mounts=[Mount(staged), Mount(out, writable=True)]), user)
    assert given == [str(out)] and out.stat().st_uid == 65534
    assert stat.S_IMODE(staged.stat().st_mode) & 0o005 == 0o005
    assert stat.S_IMODE((staged / "rows.jsonl").stat().st_mode) & 0o004 == 0o004
    private = Path(tempfile.mkdtemp(prefix="w2s-private-", dir="/var/tmp"))
    try:
        os.chmod(private, 0o700)
        with pytest.raises(SandboxUnavailable, match=f"{private} is not readable by the container's user"):
            prepare_mounts(SandboxSpec(["true"], mounts=[Mount(private)]), user)
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(private)
