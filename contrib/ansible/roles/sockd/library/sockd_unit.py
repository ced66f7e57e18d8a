#!/usr/bin/python3
# sockd_unit: restart a sockd unit with `sockctl restart UNIT --wait` when
# its unit files or its release changed since its last successful restart.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sockd_unit
short_description: Deploy a sockd unit, restarting it when its unit files or its release changed
description:
  - With O(files), installs the unit's files in O(units_dir) when they differ,
    after C(sockd verify) accepted them all, and reloads sockd through its API.
  - With O(release_link), points that link at O(release).
  - Restarts the unit with C(sockctl restart UNIT --wait --json): the new
    process starts on the same sockets, and the old one drains only once the new
    one is ready; if the new one does not get ready, sockd rolls back and the old
    one keeps serving.
  - Idempotent. After each successful restart the module records, in O(state_dir),
    the release (the target of O(release_path), or O(release)) and a SHA-256 of each
    of the unit's files (C(NAME.service), C(NAME.socket) and their C(.d/*.conf)
    drop-ins). It restarts only when one of them differs from the record.
  - Reports C(changed) when it changed a file or the link or restarted the unit.
    It fails when the restart failed or rolled back, with the restart's phases
    and the unit's output; it has then put back the link and the unit files it
    changed, and reloaded sockd, so that the host is as it was, its previous
    release serving.
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
  sockd:
    description: The sockd binary, which verifies O(files).
    type: path
    default: sockd
  units_dir:
    description: sockd's unit directory, where the unit's files are.
    type: path
    default: /etc/sockd/units
  files:
    description: The unit's files (C(NAME.service), C(NAME.socket), drop-ins as
      C(NAME.service.d/X.conf)), file name to content. Those that differ from
      O(units_dir)'s are written to a temporary directory with the unit's other
      files, verified there with C(sockd verify), and only then installed, each in one rename (services
      before sockets), and sockd reloaded.
    type: dict
  release_link:
    description: A symbolic link that names the release by its target, such as
      C(/srv/app/current); the module points it at O(release).
    type: path
  release:
    description: With O(release_link), the link's target (the release's directory);
      without, the release's name.
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
- name: Deploy web's release v42 with its unit pair
  sockd_unit:
    name: web
    api: /run/sockd/api.sock
    sockctl: /usr/local/bin/sockctl
    sockd: /usr/local/bin/sockd
    files:
      web.socket: "{{ lookup('ansible.builtin.template', 'web.socket.j2') }}"
      web.service: "{{ lookup('ansible.builtin.template', 'web.service.j2') }}"
    release_link: /srv/web/current
    release: /srv/web/releases/v42
"""

RETURN = r"""
installed:
  description: The unit files written (and put back if the restart failed).
  type: list
  elements: str
  returned: always
restarted:
  description: Whether the unit was restarted.
  type: bool
  returned: always
reason:
  description: Why the unit was restarted, or why not.
  type: str
  returned: always
release:
  description: The release deployed (the link's resolved target, or O(release)).
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
import re
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

STATE_VERSION = 1
# A unit file's name below the unit directory, after the unit's name:
# .service, .socket, or a drop-in such as .service.d/X.conf.
FILE_SUFFIX = re.compile(r"^\.(service|socket)(\.d/[A-Za-z0-9_@:-][A-Za-z0-9_.@:-]*\.conf)?$")


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


def read_bytes(path):
    """path's content, or None if there is no such file."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def digests(units_dir, names):
    return {n: hashlib.sha256(read_bytes(os.path.join(units_dir, n)) or b"").hexdigest() for n in names}


def write_atomic(path, data, mode=0o644):
    """Replaces path with data in one rename, so that a reader (sockd's
    watcher) sees the old file or the new one. The temporary file's name
    ends in no unit suffix, so sockd never reads it as a unit."""
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".sockd_unit.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def relink(link, target):
    """Points the symbolic link at target in one rename; None removes it."""
    if target is None:
        if os.path.lexists(link):
            os.unlink(link)
        return
    tmp = "%s.sockd_unit.%d" % (link, os.getpid())
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


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
    write_atomic(path, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode())


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
    line = "%s %s" % (clock(e.get("time", "")), e.get("phase", "?"))
    if e.get("pid"):
        line += " pid %d" % e["pid"]
    if e.get("message"):
        line += ": " + e["message"]
    return line


def log_line(entry):
    who = str(entry.get("pid", "?"))
    if entry.get("stream") == "stderr":
        who += " stderr"
    return "%s [%s] %s" % (clock(entry.get("time", "")), who, entry.get("line", ""))


def clock(rfc3339):
    """HH:MM:SS.mmm of an RFC 3339 time."""
    return rfc3339.split("T", 1)[1][:12] if "T" in rfc3339 else rfc3339


class Deploy:
    """One run of the module: what it changed, so that a failure puts it back."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.backups = {}  # unit file name -> its content before, None if new
        self.link_before = False  # the link's target before, None if none; False: untouched
        self.out = dict(installed=[], restarted=False)

    def sockctl(self, *args):
        p = self.p
        return self.module.run_command([p["sockctl"], "--api", p["api"], "--json"] + list(args))

    def fail(self, msg, **extra):
        """Puts back what this run changed, then fails."""
        undone = self.undo()
        if undone:
            msg += "; put back: " + ", ".join(undone)
        self.out.update(extra)
        self.module.fail_json(msg=msg, **self.out)

    def fail_sockctl(self, what, rc, err):
        if rc == 3:
            self.fail("%s: cannot reach sockd at %s: %s" % (what, self.p["api"], err.strip()))
        self.fail("%s: sockctl exit %d: %s" % (what, rc, err.strip()))

    def undo(self):
        undone = []
        if self.link_before is not False:
            relink(self.p["release_link"], self.link_before)
            undone.append("%s -> %s" % (self.p["release_link"], self.link_before or "(none)"))
            self.link_before = False
        if self.backups:
            for name, data in self.backups.items():
                path = os.path.join(self.p["units_dir"], name)
                if data is None:
                    os.unlink(path)
                else:
                    write_atomic(path, data)
                undone.append(name)
            self.backups = {}
            rc, _, err = self.sockctl("reload")
            if rc not in (0, 1):
                undone.append("(reload: exit %d: %s)" % (rc, err.strip()))
        return undone

    def verify(self, service, files):
        """Fails unless sockd verify accepts the unit as it will be: its files
        in the unit directory, with files over them."""
        p = self.p
        stage = tempfile.mkdtemp(dir=self.module.tmpdir, prefix="stage.")
        try:
            for name in unit_files(p["units_dir"], service):
                os.makedirs(os.path.dirname(os.path.join(stage, name)), exist_ok=True)
                shutil.copyfile(os.path.join(p["units_dir"], name), os.path.join(stage, name))
            for name, content in files.items():
                path = os.path.join(stage, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(content)
                os.chmod(path, 0o644)
            rc, out, err = self.module.run_command([p["sockd"], "verify", stage])
            text = (out + err).replace(stage + "/", "").strip()
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        if rc != 0:
            self.module.fail_json(msg="sockd verify: nothing installed: " + text, **self.out)
        if text:
            self.module.warn("sockd verify: " + text)

    def install(self, service, files):
        """Installs the files that differ, services before sockets, and
        reloads sockd."""
        p = self.p
        for name in sorted(files, key=lambda n: (".socket" in n, n)):
            path = os.path.join(p["units_dir"], name)
            before = read_bytes(path)
            self.backups[name] = before
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            write_atomic(path, files[name])
            self.out["installed"].append(name)
        rc, stdout, stderr = self.sockctl("reload")
        if rc not in (0, 1):
            self.fail_sockctl("reload", rc, stderr)
        try:
            res = json.loads(stdout or "{}")
        except ValueError:
            self.fail("sockctl reload: not JSON: %r" % stdout)
        mine, others = [], []
        for d in res.get("diagnostics") or []:
            if d.get("severity") == "warning":
                continue
            f = os.path.basename(d.get("file", ""))
            (mine if f.split(".")[0] == service.split(".")[0] else others).append(d.get("text", ""))
        for text in others:
            self.module.warn("sockd reload: another unit: " + text)
        if mine:
            self.fail("sockd reload: " + "; ".join(mine))

    def restart(self, service):
        """Restarts the unit with --wait; returns the events, the result, and
        the unit's output lines since the restart began."""
        p = self.p
        began = datetime.datetime.now(datetime.timezone.utc)
        args = ["restart", service, "--wait"]
        if p["stop_first"]:
            args.append("--stop-first")
        if p["timeout"]:
            args += ["--timeout", p["timeout"]]
        rc, stdout, stderr = self.sockctl(*args)
        if rc not in (0, 1):
            self.fail_sockctl("restart " + service, rc, stderr)
        events, result = [], None
        for line in stdout.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail("sockctl restart: not JSON: %r" % line)
            if "result" in obj:
                result = obj["result"]
            else:
                events.append(obj)
        self.out["phases"] = [phase_line(e) for e in events]
        if result is None:
            self.fail("sockctl restart %s: no result (exit %d): %s" % (service, rc, stderr.strip()))
        since = began.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lrc, lout, lerr = self.sockctl("logs", service, "--since", since, "-n", str(max(p["log_lines"], 1)))
        if lrc == 0:
            self.out["logs"] = [log_line(entry) for entry in json.loads(lout or "[]")]
        else:
            self.out["logs"] = ["(sockctl logs: exit %d: %s)" % (lrc, lerr.strip())]
        self.out.update(result=result, restarted=True, rolled_back=result.get("outcome") == "rolled-back")
        if rc != 0 or not result.get("ok"):
            msg = "restart %s: %s" % (service, result.get("outcome") or "failed")
            if result.get("cause"):
                msg += ": " + result["cause"]
            # Nothing recorded: the next run tries this release again.
            self.fail(msg, changed=True)
        return began, result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            api=dict(type="path", default="/run/sockd/api.sock"),
            sockctl=dict(type="path", default="sockctl"),
            sockd=dict(type="path", default="sockd"),
            units_dir=dict(type="path", default="/etc/sockd/units"),
            files=dict(type="dict"),
            release_link=dict(type="path"),
            release=dict(type="str"),
            state_dir=dict(type="path", default="/var/lib/sockd/deployed"),
            timeout=dict(type="str", default=""),
            stop_first=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            log_lines=dict(type="int", default=20),
        ),
        required_by={"release_link": "release"},
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"]
    if not re.match(r"^[A-Za-z0-9_.@:-]+$", name or "") or name.startswith("."):
        module.fail_json(msg="name: not a unit name: %r" % name)
    service = name if name.endswith(".service") else name + ".service"
    base = service[: -len(".service")]
    d = Deploy(module)

    # The files that differ from the unit directory's.
    files = {}
    for fname, content in (p["files"] or {}).items():
        if not (fname.startswith(base) and FILE_SUFFIX.match(fname[len(base):])):
            module.fail_json(msg="files: %r: not a file of %s (NAME.service, NAME.socket, NAME.service.d/X.conf)" % (fname, service))
        data = content.encode() if isinstance(content, str) else str(content).encode()
        if read_bytes(os.path.join(p["units_dir"], fname)) != data:
            files[fname] = data
    link_now = None
    if p["release_link"] and os.path.islink(p["release_link"]):
        link_now = os.readlink(p["release_link"])
    elif p["release_link"] and os.path.lexists(p["release_link"]):
        module.fail_json(msg="release_link: %s: not a symbolic link" % p["release_link"])
    relinks = bool(p["release_link"]) and link_now != p["release"]
    if p["release_link"] and not (os.path.isabs(p["release"]) and os.path.isdir(p["release"])):
        module.fail_json(msg="release: %s: not an absolute path to a directory" % p["release"])

    state_path = os.path.join(p["state_dir"], service + ".json")
    try:
        state = read_state(state_path)
    except (OSError, ValueError) as e:
        module.fail_json(msg="%s: %s" % (state_path, e))
    previous = (state or {}).get("release", "")

    if files:
        d.verify(service, files)
    if module.check_mode:
        release = os.path.realpath(p["release"]) if p["release_link"] else (p["release"] or "")
        names = unit_files(p["units_dir"], service)
        now = digests(p["units_dir"], names)
        now.update({n: hashlib.sha256(c).hexdigest() for n, c in files.items()})
        reason = reason_for(state, release, now, p["force"])
        module.exit_json(changed=bool(files or relinks or reason), reason=reason or "nothing changed",
                         release=release, previous_release=previous, installed=sorted(files))

    if relinks:
        d.link_before = link_now
        relink(p["release_link"], p["release"])
    if files:
        d.install(service, files)
    release = os.path.realpath(p["release_link"]) if p["release_link"] else (p["release"] or "")
    names = unit_files(p["units_dir"], service)
    if service not in names:
        d.fail("%s: no such unit file in %s" % (service, p["units_dir"]))
    now = digests(p["units_dir"], names)
    reason = reason_for(state, release, now, p["force"])
    d.out.update(release=release, previous_release=previous, reason=reason or "release and unit files as last restarted")
    if reason is None:
        module.exit_json(changed=bool(files or relinks), **d.out)

    began, result = d.restart(service)
    try:
        os.makedirs(p["state_dir"], mode=0o755, exist_ok=True)
        write_state(state_path, dict(
            version=STATE_VERSION,
            unit=service,
            release=release,
            units=now,
            restarted=began.strftime("%Y-%m-%dT%H:%M:%SZ"),
            millis=result.get("millis"),
            pids=result.get("new_pids") or [],
        ))
    except OSError as e:
        module.fail_json(msg="restarted, but cannot record it: %s: %s" % (state_path, e), changed=True, **d.out)
    module.exit_json(changed=True, **d.out)


if __name__ == "__main__":
    main()
