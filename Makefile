# smqgis - one entry point for set-up, the demo and the tests.
#   make demo   installs everything (QGIS from Debian/Ubuntu packages if missing,
#               both Python environments) and maps soil moisture on the bundled sample
#   make test   installs what the tests need and runs them all
SHELL := /bin/bash
ROOT := $(abspath .)
SYS_PY := /usr/bin/python3
VENV := $(ROOT)/.venv
VENV_TRAIN := $(ROOT)/.venv-train
BUILD := $(ROOT)/build
PLUGIN_LINK := $(BUILD)/plugins/smqgis

# Keep QGIS and Qt state inside the repository, headless.
export QT_QPA_PLATFORM := offscreen
export QGIS_CUSTOM_CONFIG_PATH := $(BUILD)/qgis-profile
export XDG_RUNTIME_DIR := $(BUILD)/xdg-runtime
export XDG_CACHE_HOME := $(BUILD)/xdg-cache
export QGIS_PLUGINPATH := $(BUILD)/plugins
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONDONTWRITEBYTECODE := 1

# lrelease (Debian qttools5-dev-tools) compiles the translations (i18n/*.ts -> .qm, committed).
$(BUILD)/.lrelease-ok: $(BUILD)/.system-ok
	@if ! command -v lrelease >/dev/null 2>&1; then \
	  echo ">> installing qttools5-dev-tools (lrelease, for the translations)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends qttools5-dev-tools ; \
	fi
	@touch $@
system: $(BUILD)/.lrelease-ok
test-qgis: $(BUILD)/.lrelease-ok

.PHONY: translations
translations: $(BUILD)/.lrelease-ok
	$(SYS_PY) tools/make_ts_de.py
	lrelease -silent i18n/smqgis_de.ts -qm i18n/smqgis_de.qm

# Plugin zip for plugins.qgis.org (git-tracked files only; checked against the validator's rules)
.PHONY: package
package:
	$(SYS_PY) tools/package_plugin.py --out $(ROOT)/dist

.PHONY: all demo test test-train test-qgis lint system venv venv-train plugin-link clean bench resources help

help:
	@echo "make demo | make test | make lint | make bench | make clean"

# --- system packages (Debian 12 / Ubuntu) -----------------------------------
$(BUILD)/.system-ok:
	@mkdir -p $(BUILD)
	@if ! [ -x /usr/bin/qgis_process.bin ] || ! $(SYS_PY) -c 'import qgis.core, venv, ensurepip' 2>/dev/null; then \
	  echo ">> installing QGIS and python3-venv from the distribution's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    qgis python3-qgis qgis-providers python3-venv python3-pip xvfb xauth ; \
	fi
	@touch $@
system: $(BUILD)/.system-ok

# Headless Chromium (Debian package) renders the in-situ validation report in the tests.
$(BUILD)/.chromium-ok: $(BUILD)/.system-ok
	@if ! command -v chromium >/dev/null 2>&1; then \
	  echo ">> installing chromium (headless browser for the validation-report test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium ; \
	fi
	@touch $@
system: $(BUILD)/.chromium-ok

# --- Python environments ------------------------------------------------------
$(VENV)/.ok: requirements/qgis.txt $(BUILD)/.system-ok
	$(SYS_PY) -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements/qgis.txt
	@touch $@
venv: $(VENV)/.ok

$(VENV_TRAIN)/.ok: requirements/train.txt $(BUILD)/.system-ok
	$(SYS_PY) -m venv $(VENV_TRAIN)
	$(VENV_TRAIN)/bin/pip install -q --disable-pip-version-check -r requirements/train.txt
	@touch $@
venv-train: $(VENV_TRAIN)/.ok

# qgis_process finds plugins by folder name: link the repository (the plugin folder) as build/plugins/smqgis
plugin-link:
	@mkdir -p $(BUILD)/plugins $(QGIS_CUSTOM_CONFIG_PATH) $(XDG_RUNTIME_DIR) $(XDG_CACHE_HOME)
	@chmod 700 $(XDG_RUNTIME_DIR)
	@ln -sfn $(ROOT) $(PLUGIN_LINK)

# --- the main job -----------------------------------------------------------
demo: venv plugin-link
	PATH=$(VENV)/bin:$$PATH $(VENV)/bin/python -m smqgis.demo --via qgis_process

# --- tests --------------------------------------------------------------------
test-train: venv-train
	$(VENV_TRAIN)/bin/python -m pytest -q tests/training

test-qgis: venv plugin-link
	PATH=$(VENV)/bin:$$PATH $(VENV)/bin/python -m pytest -q tests/core tests/qgis

test-qgis: $(BUILD)/.chromium-ok

# ruff (rules and line length in pyproject.toml) over the whole repository
lint: venv
	$(VENV)/bin/ruff check .

# Security scans as on plugins.qgis.org: bandit (medium and above) on smqgis/, detect-secrets on tracked files.
.PHONY: security qt6-check
security: venv
	$(VENV)/bin/bandit -q -r smqgis -ll
	$(VENV)/bin/detect-secrets scan | $(VENV)/bin/python -c 'import json,sys; r=json.load(sys.stdin)["results"]; print(r or "detect-secrets: nothing found"); sys.exit(bool(r))'
lint: security

# QGIS 4 / Qt 6: QGIS's pyqt5_to_pyqt6 script (if put in build/pyqt5_to_pyqt6/) or its rules must find nothing.
qt6-check: venv
	$(VENV)/bin/python tools/qt6_check.py

test: lint test-train test-qgis

# Regenerate the bundled sample scene and the demo model from fixed seeds (simulated world).
resources: venv-train
	$(VENV_TRAIN)/bin/python -m training.simulate.make_resources

bench: venv
	PATH=$(VENV)/bin:$$PATH $(VENV)/bin/python -m smqgis.bench

clean:
	rm -rf $(BUILD) $(VENV) $(VENV_TRAIN)
