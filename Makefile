# The README's two commands: `make demo` and `make test`. Both set everything up on a fresh
# machine: a virtual environment in .venv with fastmlp and what it needs, and Fashion-MNIST
# from Debian's dataset-fashion-mnist package (installed when missing and we are root).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: install data demo test bench bench-guard clean help

help:
	@echo "make demo   - set up, then train the seed's Fashion-MNIST network; figures in runs/demo/"
	@echo "make test   - set up, then run the test suite"
	@echo "make bench  - set up, then run the benchmark suite (pytest benchmarks/ --benchmark-only)"
	@echo "make bench-guard - set up, then check the speed ratios in benchmarks/thresholds.json"
	@echo "make clean  - remove .venv and runs/"

$(STAMP): pyproject.toml setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,sklearn,dask]'
	@touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST: present, installed through apt-get when we are root, or a clear message.
data:
	@if [ -n "$$FASHION_MNIST_DIR" ] && [ -d "$$FASHION_MNIST_DIR" ]; then \
	  echo "Fashion-MNIST: using \$$FASHION_MNIST_DIR=$$FASHION_MNIST_DIR"; \
	elif [ -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST: found in $(FMNIST)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Fashion-MNIST: installing Debian's dataset-fashion-mnist"; \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null)) || \
	  echo "Fashion-MNIST: apt-get could not install dataset-fashion-mnist; tests that need it will be skipped"; \
	else \
	  echo "Fashion-MNIST is not installed and this is not root: run"; \
	  echo "    sudo apt-get install dataset-fashion-mnist"; \
	  echo "or set FASHION_MNIST_DIR to a folder holding the four IDX files."; \
	  echo "(tests that need it will be skipped; 'make demo' needs it)"; \
	fi

demo: install data
	$(VENV)/bin/fastmlp train --data fashion-mnist --hidden 64 --batch-size 32 --lr 0.1 \
	    --l1 1e-4 --l2 1e-4 --epochs 30 --eval-train --seed 0 --out runs/demo

test: install data
	$(PY) -m pytest

bench: install data
	$(PY) -m pytest benchmarks/ --benchmark-only

# The performance-regression guard: speed ratios measured in one run (< 1 minute).
bench-guard: install
	$(VENV)/bin/fastmlp bench --guard benchmarks/thresholds.json

clean:
	rm -rf $(VENV) runs
