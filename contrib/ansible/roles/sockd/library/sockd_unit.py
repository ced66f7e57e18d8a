#!/usr/bin/python3
# sockd_unit: restart a sockd unit with `sockctl restart UNIT --wait` when
# its unit files or its release changed since its last successful restart.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sockd_unit
short_description: Restart a sockd unit when its unit files or its release changed
description:
  - Restarts a unit of sockd with C(sockctl restart UNIT --wait --json): the new
    process starts on the same sockets, and the old one drains only once the new
    one is ready; if the new one does not get ready, sockd rolls back and the old
    one keeps serving.
  - Idempotent. After each successful restart the module records, in O(state_dir),
    the release (the target of O(release_path), or O(release)) and a SHA-256 of each
    of the unit's files (C(NAME.service), C(NAME.socket) and their C(.d/*.conf)
    drop-ins). It restarts only when one of them differs from the record.
  - Reports C(changed) when it restarted the unit, and fails when the restart
    failed or rolled back, with the restart's phases and the unit's output.
options:
  name:
    description: The unit, with or without C(.service).
    type: str
    required: true
  api:
    description: sockd's API socket (C(sockctl --api)).
    type: path
    default: /run/sockd/api.sock
  sockctl:
    description: The sockctl binary.
    type: path
    default: sockctl
  units_dir:
    description: sockd's unit directory, where the unit's files are.
    type: path
    default: /etc/sockd/units
  release_path:
    description: A path whose target (with every symbolic link resolved) names the
      release, such as a C(current) link.
    type: path
  release:
    description: The release's name, where there is no O(release_path).
    type: str
  state_dir:
    description: Where the record of each unit's last successful restart is kept.
    type: path
    default: /var/lib/sockd/deployed
  timeout:
    description: C(sockctl --timeout), a Go duration such as C(2m); empty waits as
      long as the unit's own timeouts.
    type: str
    default: ""
  stop_first:
    description: Stop the old process before starting the new one (C(--stop-first)).
    type: bool
    default: false
  force:
    description: Restart even when nothing changed.
    type: bool
    default: false
  log_lines:
    description: How many of the unit's output lines written during the restart to
      return.
    type: int
    default: 20
author: sockd
"""

EXAMPLES = r"""
- name: Restart web when its release or unit files changed
  sockd_unit:
    name: web
    api: /run/sockd/api.sock
    release_path: /srv/web/current
"""

RETURN = r"""
restarted:
  description: Whether the unit was restarted.
  type: bool
  returned: always
reason:
  description: Why the unit was restarted, or why not.
  type: str
  returned: always
release:
  description: The release now recorded (after a successful restart) or deployed.
  type: str
  returned: always
previous_release:
  description: The release of the last successful restart, if any.
  type: str
  returned: always
phases:
  description: The restart's phases as sockctl reported them, one a line.
  type: list
  elements: str
  returned: when restarted
result:
  description: sockctl's result object (unit, ok, outcome, cause, old_pids, new_pids,
    millis, log_tail).
  type: dict
  returned: when restarted
logs:
  description: The unit's output lines written since the restart began.
  type: list
  elements: str
  returned: when restarted
rolled_back:
  description: Whether sockd rolled the restart back, the old process serving on.
  type: bool
  returned: when restarted
"""

import datetime
import hashlib
import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

STATE_VERSION = 1


def unit_files(units_dir, service):
    """The files that make up the unit, relative to units_dir, sorted."""
    base = service[: -len(".service")]
    names = []
    for main in (service, base + ".socket"):
        if os.path.isfile(os.path.join(units_dir, main)):
            names.append(main)
        dropins = os.path.join(units_dir, main + ".d")
        if os.path.isdir(dropins):
            names.extend(
                main + ".d/" + f for f in sorted(os.listdir(dropins)) if f.endswith(".conf")
            )
    return names


def digests(units_dir, names):
    out = {}
    for name in names:
        h = hashlib.sha256()
        with open(os.path.join(units_dir, name), "rb") as f:
            for chunk in iter(lambda: f.read(65536), b""):
                h.update(chunk)
        out[name] = h.hexdigest()
    return out


def read_state(path):
    try:
        with open(path) as f:
            state = json.load(f)
    except FileNotFoundError:
        return None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        return None
    return state


def write_state(path, state):
    """Replaces path with state in one rename, so that a crash leaves the old
    record or the new one."""
    d = os.path.dirname(path)
    os.makedirs(d, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".sockd_unit.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def reason_for(state, release, files, force):
    """Why the unit needs a restart, or None."""
    if force:
        return "forced"
    if state is None:
        return "no record of a restart by sockd_unit"
    if state.get("release") != release:
        return "release %s -> %s" % (state.get("release") or "(none)", release or "(none)")
    old = state.get("units", {})
    changed = sorted(n for n in set(old) | set(files) if old.get(n) != files.get(n))
    if changed:
        return "unit files changed: " + ", ".join(changed)
    return None


def phase_line(e):
    """One restart event as sockctl prints it, with its time."""
    t = e.get("time", "")
    if "T" in t:
        t = t.split("T", 1)[1][:12]
    line = "%s %s" % (t, e.get("phase", "?"))
    if e.get("pid"):
        line += " pid %d" % e["pid"]
    if e.get("message"):
        line += ": " + e["message"]
    return line


def log_line(entry):
    t = entry.get("time", "")
    if "T" in t:
        t = t.split("T", 1)[1][:12]
    who = str(entry.get("pid", "?"))
    if entry.get("stream") == "stderr":
        who += " stderr"
    return "%s [%s] %s" % (t, who, entry.get("line", ""))


def sockctl(module, *args):
    p = module.params
    return module.run_command([p["sockctl"], "--api", p["api"], "--json"] + list(args))


def unreachable(module, rc, err, **extra):
    """Fails for a sockctl exit status other than 0 and 1."""
    what = {2: "sockctl usage", 3: "cannot reach sockd at %s" % module.params["api"]}
    module.fail_json(
        msg="%s (sockctl exit %d): %s" % (what.get(rc, "sockctl failed"), rc, err.strip()),
        **extra
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            api=dict(type="path", default="/run/sockd/api.sock"),
            sockctl=dict(type="path", default="sockctl"),
            units_dir=dict(type="path", default="/etc/sockd/units"),
            release_path=dict(type="path"),
            release=dict(type="str"),
            state_dir=dict(type="path", default="/var/lib/sockd/deployed"),
            timeout=dict(type="str", default=""),
            stop_first=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            log_lines=dict(type="int", default=20),
        ),
        mutually_exclusive=[("release_path", "release")],
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"]
    if not name or "/" in name or name.startswith("."):
        module.fail_json(msg="name: not a unit name: %r" % name)
    service = name if name.endswith(".service") else name + ".service"

    release = p["release"] or ""
    if p["release_path"]:
        if not os.path.lexists(p["release_path"]):
            module.fail_json(msg="release_path: %s: no such file" % p["release_path"])
        release = os.path.realpath(p["release_path"])
    names = unit_files(p["units_dir"], service)
    if service not in names:
        module.fail_json(msg="%s: no such unit file in %s" % (service, p["units_dir"]))
    files = digests(p["units_dir"], names)
    state_path = os.path.join(p["state_dir"], service + ".json")
    try:
        state = read_state(state_path)
    except (OSError, ValueError) as e:
        module.fail_json(msg="%s: %s" % (state_path, e))
    previous = (state or {}).get("release", "")

    reason = reason_for(state, release, files, p["force"])
    out = dict(release=release, previous_release=previous, restarted=False)
    if reason is None:
        module.exit_json(changed=False, reason="release and unit files as last restarted", **out)
    if module.check_mode:
        module.exit_json(changed=True, reason=reason, **out)

    began = datetime.datetime.now(datetime.timezone.utc)
    args = ["restart", service, "--wait"]
    if p["stop_first"]:
        args.append("--stop-first")
    if p["timeout"]:
        args += ["--timeout", p["timeout"]]
    rc, stdout, stderr = sockctl(module, *args)
    if rc not in (0, 1):
        unreachable(module, rc, stderr, reason=reason, **out)
    events, result = [], None
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            module.fail_json(msg="sockctl restart: not JSON: %r" % line, reason=reason, **out)
        if "result" in obj:
            result = obj["result"]
        else:
            events.append(obj)
    if result is None:
        module.fail_json(
            msg="sockctl restart %s: no result (exit %d): %s" % (service, rc, stderr.strip()),
            phases=[phase_line(e) for e in events], reason=reason, **out
        )

    since = began.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lrc, lout, lerr = sockctl(module, "logs", service, "--since", since, "-n", str(max(p["log_lines"], 1)))
    if lrc == 0:
        logs = [log_line(entry) for entry in json.loads(lout or "[]")]
    else:
        logs = ["(sockctl logs: exit %d: %s)" % (lrc, lerr.strip())]

    out.update(
        restarted=True,
        reason=reason,
        phases=[phase_line(e) for e in events],
        result=result,
        logs=logs,
        rolled_back=result.get("outcome") == "rolled-back",
    )
    if rc != 0 or not result.get("ok"):
        msg = "restart %s: %s" % (service, result.get("outcome") or "failed")
        if result.get("cause"):
            msg += ": " + result["cause"]
        # Nothing recorded: the next run tries this release again.
        module.fail_json(msg=msg, changed=True, **out)

    try:
        write_state(state_path, dict(
            version=STATE_VERSION,
            unit=service,
            release=release,
            units=files,
            restarted=began.strftime("%Y-%m-%dT%H:%M:%SZ"),
            millis=result.get("millis"),
            pids=result.get("new_pids") or [],
        ))
    except OSError as e:
        module.fail_json(msg="restarted, but cannot record it: %s: %s" % (state_path, e), changed=True, **out)
    module.exit_json(changed=True, **out)


if __name__ == "__main__":
    main()
