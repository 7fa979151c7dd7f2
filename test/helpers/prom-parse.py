# Parses Prometheus text (stdin) with the Prometheus project's own Python client parser
# (prometheus_client.parser, Debian's python3-prometheus-client) and prints, as JSON, every
# family with its type and samples. It fails (exit 1, the parser's message) on text that a
# Prometheus server would refuse; test/helpers/prometheus.ts runs it.
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = []
seen = set()
for family in text_string_to_metric_families(sys.stdin.read()):
    if family.name in seen:
        sys.exit(f'family {family.name} appears twice')
    seen.add(family.name)
    families.append({
        'name': family.name,
        'type': family.type,
        'samples': [{'name': s.name, 'labels': s.labels, 'value': s.value} for s in family.samples],
    })
print(json.dumps(families))
