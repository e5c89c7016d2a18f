# Everything a fresh machine needs goes through these targets.
PYTHON ?= python3
APT_PACKAGES = iptables nftables iproute2 bpftool netsniff-ng ipset

.PHONY: setup setup-system setup-python test lint demo bench

setup: setup-system setup-python

setup-system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

setup-python:
	$(PYTHON) -m pip install -q -e '.[dev]'

test: setup
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check bpfilter tests bench

demo: setup
	$(PYTHON) -m bpfilter.demo

bench: setup
	$(PYTHON) -m pytest -q bench --benchmark-enable --benchmark-json=bench/results.json
