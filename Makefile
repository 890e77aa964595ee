# Gannet — the two set-up commands are `make run` and `make test` (see README.md).
BUILD_DIR    ?= build
BUILD_TYPE   ?= Release
JOBS         ?= $(shell nproc)
FUZZ_DIR     ?= build-fuzz
FUZZ_SECONDS ?= 60
GANNET_FLAGS ?=

CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
              -DCMAKE_CXX_COMPILER_LAUNCHER=$(shell command -v ccache 2>/dev/null)

.PHONY: all deps build run cluster test unit fuzz bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# Single-node broker on 0.0.0.0:1883, data in ./data.
run: build
	@mkdir -p data
	$(BUILD_DIR)/cmd/gannet/gannet --mqtt_listen=0.0.0.0:1883 --data_dir=./data $(GANNET_FLAGS)

# Three nodes on this machine as one cluster (MQTT 1883/1884/1885, data in
# ./data/nodeN): deploy/local-cluster.sh.
cluster: build
	deploy/local-cluster.sh $(BUILD_DIR) $(GANNET_FLAGS)

# The packet-decoder fuzzer for a bounded time, then every test through ctest
# (whose summary line ends the output).
test: build
	@scripts/install-helm.sh .tools >/dev/null   # helm + kubectl for tests/deploy (git-ignored)
	@$(MAKE) --no-print-directory fuzz
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -L unit

# libFuzzer targets (clang): the MQTT packet decoder for FUZZ_SECONDS, the
# WebSocket framing and the ACL parser for a third of that each.
fuzz: deps
	@cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGANNET_FUZZ=ON \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_CXX_COMPILER_LAUNCHER=$(shell command -v ccache 2>/dev/null) >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target codec_fuzzer ws_fuzzer acl_fuzzer
	@mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/corpus-ws $(FUZZ_DIR)/corpus-acl
	$(FUZZ_DIR)/fuzz/codec_fuzzer -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 $(FUZZ_DIR)/corpus fuzz/seeds
	$(FUZZ_DIR)/fuzz/ws_fuzzer -max_total_time=$$(( $(FUZZ_SECONDS) / 3 )) -max_len=4096 \
	  -print_final_stats=1 $(FUZZ_DIR)/corpus-ws fuzz/seeds-ws
	$(FUZZ_DIR)/fuzz/acl_fuzzer -max_total_time=$$(( $(FUZZ_SECONDS) / 3 )) -max_len=4096 \
	  -print_final_stats=1 $(FUZZ_DIR)/corpus-acl fuzz/seeds-acl

# Side-by-side throughput/latency tables against Mosquitto (see docs/performance.md).
bench: build
	benchmarks/compare.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR)
