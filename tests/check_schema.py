#!/usr/bin/python3
"""Checks `kiln schema` against real configs with a reference JSON Schema validator.

The schema must itself be a valid draft 2020-12 schema, accept every config upstream ships and
kiln's demo configs, and reject configs with wrong types. Run by `make test`:
    tests/check_schema.py path/to/kiln
"""
import glob
import json
import subprocess
import sys

import jsonschema

kiln = sys.argv[1]
schema = json.loads(subprocess.check_output([kiln, "schema"]))
validator_cls = jsonschema.validators.validator_for(schema)
validator_cls.check_schema(schema)
validator = validator_cls(schema)

configs = sorted(
    glob.glob("tests/azl-compat/imageconfigs/*.json")
    + glob.glob("tests/azl-compat/resources-imageconfigs/*.json")
    + glob.glob("imageconfigs/*.json")
)
failed = 0
for path in configs:
    with open(path) as f:
        errors = list(validator.iter_errors(json.load(f)))
    for e in errors:
        print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    failed += bool(errors)

bad = [
    {"Disks": [{"MaxSize": -1}]},
    {"SystemConfigs": [{"BootType": "uefi"}]},
    {"SystemConfigs": [{"KernelCommandLine": {"SELinux": "on"}}]},
    {"SystemConfigs": [{"AdditionalFiles": {"a": []}}]},
    {"SystemConfigs": [{"AdditionalFiles": {"a": {"Path": "/a", "Permissions": "999"}}}]},
    {"Disks": [{"Partitions": [{"Flags": ["bogus"]}]}]},
]
for doc in bad:
    if validator.is_valid(doc):
        print(f"schema accepts an invalid config: {json.dumps(doc)}")
        failed += 1

pkg_schema = json.loads(subprocess.check_output([kiln, "schema", "--package-list"]))
for path in sorted(glob.glob("tests/azl-compat/imageconfigs/packagelists/*.json")):
    with open(path) as f:
        for e in jsonschema.validators.validator_for(pkg_schema)(pkg_schema).iter_errors(json.load(f)):
            print(f"{path}: {e.message}")
            failed += 1

total = len(configs) + len(bad)
print(f"{total - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
