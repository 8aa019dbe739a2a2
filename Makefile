# stackc developer entry points. `make demo` and `make test` each work alone on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench corpus clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/stackc build examples/resnet_tiny.onnx --target edge-desktop --out out/demo
	@echo "bundle written: out/demo/resnet_tiny-0.1.0-edge-desktop (verify it with: $(BIN)/stackc verify out/demo/resnet_tiny-0.1.0-edge-desktop)"

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m benchmarks.run

# every model of the real-model corpus (../shared/corpus, or $STACKC_CORPUS) for the three edge worlds
corpus: install
	$(BIN)/python -m benchmarks.corpus

clean:
	rm -rf out build dist *.egg-info .pytest_cache
