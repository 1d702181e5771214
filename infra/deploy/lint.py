#!/usr/bin/env python3
"""Checks the deployment files without a cluster: they parse, have what compose/Kubernetes
need, and every `avatar` command line in them is one the binary accepts (run with --help).

    python3 infra/deploy/lint.py [PATH/TO/avatar]
"""
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
errors = []


def err(where, what):
    errors.append(f"{where}: {what}")


def check_cmd(where, args, avatar):
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        err(where, f"command must be a list of strings, got {args!r}")
        return
    if avatar:
        r = subprocess.run([avatar, *args, "--help"], capture_output=True, text=True)
        if r.returncode != 0:
            err(where, f"`avatar {' '.join(args)}` is refused: {r.stderr.strip()[:300]}")


def compose(avatar):
    path = HERE / "compose.yaml"
    doc = yaml.safe_load(path.read_text())
    services = doc.get("services") or {}
    if not services:
        err(path.name, "no services")
    volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        where = f"{path.name}: service {name}"
        if "image" not in svc and "build" not in svc:
            err(where, "needs image or build")
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0]
            if not src.startswith(("/", ".", "~")) and src not in volumes:
                err(where, f"volume {src} is not declared")
        for dep in svc.get("depends_on", {}):
            if dep not in services:
                err(where, f"depends on unknown service {dep}")
        if svc.get("image", "").startswith("avatar") and "command" in svc:
            check_cmd(where, svc["command"], avatar)


def k8s(avatar):
    for path in sorted((HERE / "k8s").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        names = {(d.get("kind"), d.get("metadata", {}).get("name")) for d in docs}
        for d in docs:
            kind = d.get("kind")
            name = d.get("metadata", {}).get("name")
            where = f"{path.name}: {kind}/{name}"
            if not d.get("apiVersion") or not kind or not name:
                err(where, "needs apiVersion, kind and metadata.name")
                continue
            if kind in ("Deployment", "StatefulSet"):
                spec = d.get("spec", {})
                labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
                selector = spec.get("selector", {}).get("matchLabels", {})
                if not selector or any(labels.get(k) != v for k, v in selector.items()):
                    err(where, "selector does not match the pod template's labels")
                pod = spec.get("template", {}).get("spec", {})
                vols = {v["name"] for v in pod.get("volumes", [])}
                vols |= {v["metadata"]["name"] for v in spec.get("volumeClaimTemplates", [])}
                for c in pod.get("containers", []):
                    if not c.get("image"):
                        err(where, f"container {c.get('name')} has no image")
                    for m in c.get("volumeMounts", []):
                        if m["name"] not in vols:
                            err(where, f"mount {m['name']} has no volume")
                    for ef in c.get("envFrom", []):
                        ref = ef.get("configMapRef", {}).get("name")
                        if ref and ("ConfigMap", ref) not in names:
                            err(where, f"ConfigMap {ref} is not defined")
                    if c.get("image", "").startswith("avatar"):
                        check_cmd(where, c.get("args", []), avatar)
                for v in pod.get("volumes", []):
                    claim = v.get("persistentVolumeClaim", {}).get("claimName")
                    if claim and ("PersistentVolumeClaim", claim) not in names:
                        err(where, f"claim {claim} is not defined")


def main():
    avatar = sys.argv[1] if len(sys.argv) > 1 else None
    compose(avatar)
    k8s(avatar)
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        sys.exit(1)
    print("deployment files: ok" + ("" if avatar else " (commands not checked: no binary given)"))


main()
