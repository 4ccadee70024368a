# cadr: set-up and entry points. `make demo` and `make test` are the README's two commands;
# each installs everything it needs on a fresh Debian/Ubuntu machine with Python 3.11.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
DEVICE_VENV := .venv-device
DEV_VENV := .venv
DEMO_OUT ?= out/demo
PYTEST_ARGS ?= -n 2

# Debian packages: the CJK font for Japanese screens, venv support, systemd-analyze for the
# unit-file tests, Java for the IMX500 converter.
APT_DEMO := fonts-noto-cjk python3-venv
APT_TEST := $(APT_DEMO) systemd openjdk-17-jre-headless

.PHONY: demo test bench apt-demo apt-test venv-device venv-dev imx500-toolchain \
        arm64-smoke wheelhouse lint catalogs clean

demo: apt-demo venv-device
	$(DEVICE_VENV)/bin/cadr-device --source samples --out $(DEMO_OUT) --headless --force

test: apt-test venv-dev imx500-toolchain
	$(DEV_VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: venv-dev
	$(DEV_VENV)/bin/python -m bench

lint: venv-dev
	$(DEV_VENV)/bin/ruff check device convert bench tests
	$(DEV_VENV)/bin/mypy device convert

apt-demo:
	@scripts/apt-install.sh $(APT_DEMO)

apt-test:
	@scripts/apt-install.sh $(APT_TEST)

venv-device: $(DEVICE_VENV)/.installed
$(DEVICE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/pip install --quiet --upgrade pip
	$(DEVICE_VENV)/bin/pip install --quiet .
	touch $@

venv-dev: $(DEV_VENV)/.installed
$(DEV_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEV_VENV)
	$(DEV_VENV)/bin/pip install --quiet --upgrade pip
	$(DEV_VENV)/bin/pip install --quiet -e '.[convert,test]'
	touch $@

imx500-toolchain:
	scripts/imx500-toolchain.sh

arm64-smoke: venv-dev
	scripts/arm64-smoke.sh

# The offline wheelhouse for a Raspberry Pi (aarch64, Python 3.11); see docs/install-pi.md.
WHEELHOUSE_MACHINE ?= aarch64
WHEELHOUSE_PYTHON ?= 3.11
wheelhouse: venv-dev
	$(DEV_VENV)/bin/python -m cadr_convert.wheelhouse --machine $(WHEELHOUSE_MACHINE) \
	    --python $(WHEELHOUSE_PYTHON) --replace

catalogs: venv-dev
	$(DEV_VENV)/bin/python scripts/compile-catalogs.py

clean:
	rm -rf $(DEVICE_VENV) out build *.egg-info
