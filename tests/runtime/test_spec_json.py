"""spec.json and state.json: the runtime's values survive JSON, and a damaged file is named,
never half-read; a start claims a container and, if it fails, leaves it as it was. Pure:
temp dirs only."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from runtime.test_oci import config, parse
from unionfs.errors import UserError
from unionfs.runtime import jsonvalues, spec
from unionfs.runtime.state import ContainerDirs, Saved, State


def roundtrip(value: object) -> object:
    return jsonvalues.load(type(value), json.loads(json.dumps(jsonvalues.dump(value))))


def cli_spec() -> spec.RunSpec:
    return spec.from_cli(
        rootfs="/layers/top", command=["sh", "-c", "echo $A"], host_env={"B": "2"},
        name="web", remove=True, memory="64m", cpus="0.5", pids="20", env=["A=1", "B"],
        workdir="/srv", user="5:6", volumes=["/host:/data:ro", "/tmp:/scratch"],
    )  # fmt: skip


def test_a_spec_from_flags_and_one_from_config_json_survive_json() -> None:
    flags = cli_spec()
    assert roundtrip(flags) == flags
    assert roundtrip(Saved(flags, 2.5)) == Saved(flags, 2.5)
    bundle = parse(config())  # device rules, rlimits, capabilities: nested values
    assert bundle.resources.devices and bundle.process.rlimits and bundle.process.capabilities
    assert roundtrip(bundle) == bundle
    assert roundtrip(parse(config(linux__resources={"pids": {"limit": 10}}))).resources.pids == 10


def test_a_missing_field_takes_its_default_and_an_int_is_a_float() -> None:
    saved = jsonvalues.load(Saved, {"spec": jsonvalues.dump(cli_spec())})
    assert saved.stop_timeout == 10.0
    assert jsonvalues.load(Saved, {"spec": jsonvalues.dump(cli_spec()), "stop_timeout": 3})
    assert isinstance(jsonvalues.load(Saved, {**jsonvalues.dump(saved), "stop_timeout": 3})
                      .stop_timeout, float)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["spec"]["process"].update(uid="0"), r"spec\.process\.uid: expected int"),
        (lambda d: d["spec"]["process"].pop("args"), r"Saved\.spec\.process: args is missing"),
        (lambda d: d["spec"].update(colour="red"), r"Saved\.spec: unknown field 'colour'"),
        (lambda d: d["spec"]["resources"].update(memory=True), r"memory: expected int, not bool"),
        (lambda d: d["spec"].update(sysctl=[["a"]]), r"sysctl\[0\]: expected 2 items, not 1"),
        (lambda d: d["spec"].update(mounts={}), r"Saved\.spec\.mounts: expected a list"),
    ],
)  # fmt: skip
def test_a_value_that_does_not_fit_is_named(change: object, message: str) -> None:
    data = json.loads(json.dumps(jsonvalues.dump(Saved(cli_spec()))))
    change(data)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        jsonvalues.load(Saved, data)


def test_spec_json_is_saved_beside_the_state_and_a_damaged_one_is_one_error(
    tmp_path: Path,
) -> None:
    store = ContainerDirs(str(tmp_path))
    state = store.create("c", ("sh",), "/rootfs", remove=False, runtime=False)
    assert store.load_spec(state) is None  # created without a command
    store.save_spec(state.id, Saved(cli_spec(), 1.0))
    assert store.load_spec(state) == Saved(cli_spec(), 1.0)
    assert sorted(p.name for p in Path(store.paths(state.id).dir).iterdir()) == [
        "rootfs", "spec.json", "state.json", "upper", "work",
    ]  # fmt: skip
    Path(store.paths(state.id).spec).write_text('{"spec": {')
    with pytest.raises(UserError, match=r"container c: its spec\.json is damaged"):
        store.load_spec(state)


def test_claim_checks_under_the_lock_and_resets_the_run_fields(tmp_path: Path) -> None:
    store = ContainerDirs(str(tmp_path))
    made = store.create("c", ("sh",), "/rootfs", remove=False, runtime=False)
    store.save(dataclasses.replace(made, status="exited", exit_code=3))

    def refuse(state: State) -> None:
        raise UserError(f"no: {state.status}")

    with pytest.raises(UserError, match="no: exited"):
        store.claim(made.id, refuse)
    before, now = store.claim(made.id, lambda s: None)
    assert before.exit_code == 3 and store.load(made.id) == now
    assert (now.status, now.exit_code, now.runtime_pid) == ("created", None, os.getpid())


def test_a_start_that_fails_before_the_process_ran_leaves_the_container_as_it_was(
    tmp_path: Path,
) -> None:
    from unionfs.runtime.run import Registration

    store = ContainerDirs(str(tmp_path))
    made = store.create("c", ("sh",), "/rootfs", remove=True, runtime=False)
    store.save(dataclasses.replace(made, status="exited", exit_code=3))
    before, now = store.claim(made.id, lambda s: None)
    Registration(store, now, remove=True, before=before).finish()  # failed: restored, kept
    assert store.load(made.id) == before
    before, now = store.claim(made.id, lambda s: None)
    ran = Registration(store, now, remove=False, before=before)
    ran.update(status="exited", exit_code=0)
    ran.finish()  # ran: the new state stays
    assert store.load(made.id) == ran.state
    before, now = store.claim(made.id, lambda s: None)
    removed = Registration(store, now, remove=True, before=before)
    removed.update(status="exited", exit_code=0)
    removed.finish()  # ran, --rm: gone
    assert store.all() == []
