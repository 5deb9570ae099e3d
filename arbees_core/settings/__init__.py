"""Every environment variable arbees reads, declared once: name, type, default, unit, readers, one line of doc.

Services read a setting through its declaration (`Env().get(S.MIN_EDGE_PCT)`), so its type, default and the
error for a malformed value are the same for every reader, the preflight check (`runtime/preflight.py`) and
`python -m <service> --help`. The registry's per-service settings come from `readers`; the README's settings table
is generated from this module (`python -m arbees_core.settings --markdown`) and a test keeps the two equal.

To add a setting: one declaration in its area below (readers: the services that read it, `ARBEES` for the CLI and
its runtimes), read it with `env.get(S.NAME)`, then regenerate the README table. A new service: add it to
PIPELINE (the settings every service reads) and to the groups whose settings it reads.
"""

from __future__ import annotations

from arbees_core.settings.model import (DECLARED, Bool, Choice, DatabaseUrl, Endpoint, Endpoints, Float, FloatList,
                                        Int, RedisUrl, Setting, Str, StrList, declared, read_by)
from arbees_core.topics import API, EXECUTION_SERVICE, EXECUTION_SERVICE_PORT, GAME_SHARD, GAME_SHARD_PORT
from arbees_core.topics import API_PORT as _API_HTTP_PORT
from arbees_core.topics import (KALSHI_MONITOR, KALSHI_MONITOR_PORT, MARKET_DISCOVERY, POLYMARKET_MONITOR,
                                ORCHESTRATOR, POLYMARKET_MONITOR_PORT, POSITION_TRACKER, POSITION_TRACKER_PORT,
                                ZMQ_LISTENER, tcp_endpoint)

__all__ = ["DECLARED", "Setting", "declared", "read_by"]

# Readers: service names as the registry spells them, and `arbees` (the CLI, its runtimes and checks).
ARBEES = "arbees"
PIPELINE = (MARKET_DISCOVERY, ZMQ_LISTENER, KALSHI_MONITOR, POLYMARKET_MONITOR, GAME_SHARD, EXECUTION_SERVICE, API,
            POSITION_TRACKER, ORCHESTRATOR)
SHARDED = (GAME_SHARD, EXECUTION_SERVICE, ZMQ_LISTENER, ORCHESTRATOR)
MONITORS = (KALSHI_MONITOR, POLYMARKET_MONITOR)
PUBLISHERS = (*MONITORS, GAME_SHARD, EXECUTION_SERVICE, POSITION_TRACKER)
SIM = (MARKET_DISCOVERY, *MONITORS)
KALSHI_LIVE = (MARKET_DISCOVERY, KALSHI_MONITOR)
POLYMARKET_LIVE = (MARKET_DISCOVERY, POLYMARKET_MONITOR)
ARB = (GAME_SHARD, API)
SIZING = (GAME_SHARD, EXECUTION_SERVICE, API)
FEES = (*SIZING, POSITION_TRACKER)
MIRRORS = (ZMQ_LISTENER, API)
_LOCAL = "127.0.0.1"
_PRICES = (tcp_endpoint(_LOCAL, KALSHI_MONITOR_PORT), tcp_endpoint(_LOCAL, POLYMARKET_MONITOR_PORT))

# --- transport and wiring (every service) ---
ZMQ_ENABLED = Bool("ZMQ_ENABLED", False, "publish the hot path over ZeroMQ; false: Redis streams (the rollback "
                   "target)", (*PIPELINE, ARBEES))
REDIS_URL = RedisUrl("REDIS_URL", "redis://127.0.0.1:6379/0", "the Redis server (streams, health keys)",
                     (*PIPELINE, ARBEES))
ARBEES_WIRE = Choice("ARBEES_WIRE", "json", "wire format of every message", PIPELINE, choices=("json", "msgpack"))
ZMQ_BIND_HOST = Str("ZMQ_BIND_HOST", _LOCAL, "host a ZMQ publisher binds", (*PIPELINE, ARBEES))
ZMQ_SNDHWM = Int("ZMQ_SNDHWM", 10_000, "ZMQ send high-water mark", PIPELINE, unit="messages", minimum=0)
ZMQ_RCVHWM = Int("ZMQ_RCVHWM", 10_000, "ZMQ receive high-water mark", PIPELINE, unit="messages", minimum=0)
ZMQ_SEND_YIELD = Bool("ZMQ_SEND_YIELD", True, "a publisher yields the CPU after a send, so libzmq's I/O thread "
                      "sends at once", PIPELINE)
ZMQ_SPIN_US = Int("ZMQ_SPIN_US", 0, "game_shard polls its price socket this long after each price instead of "
                  "blocking (0 = off; about 60 % of a core while prices flow)", PIPELINE, unit="µs", minimum=0)
REDIS_STREAM_MAXLEN = Int("REDIS_STREAM_MAXLEN", 10_000, "approximate length each Redis stream is trimmed to",
                          PIPELINE, unit="entries", minimum=100)
TRANSPORT_BLOCK_MS = Int("TRANSPORT_BLOCK_MS", 100, "how long a receive blocks before the loop checks for stop",
                         PIPELINE, unit="ms", minimum=1)
HEARTBEAT_INTERVAL_SECS = Float("HEARTBEAT_INTERVAL_SECS", 1.0, "how often a service publishes its heartbeat and "
                                "metrics", PIPELINE, unit="s", minimum=0.05, shown_default="1 (monitors: 0.5)")
ZMQ_PUB_PORT = Int("ZMQ_PUB_PORT", 0, "port the service's ZMQ publisher binds", (*PUBLISHERS, ARBEES), minimum=0,
                   shown_default="the plan's: 5555, 5556, 5558, 5560")
ZMQ_PUB_ENDPOINT = Str("ZMQ_PUB_ENDPOINT", "", "full bind endpoint, instead of ZMQ_BIND_HOST and ZMQ_PUB_PORT",
                       (*PUBLISHERS, ARBEES))
ZMQ_SUB_ENDPOINTS = Endpoints("ZMQ_SUB_ENDPOINTS", _PRICES, "the monitors' publishers game_shard subscribes to",
                              (GAME_SHARD,))
ZMQ_SUB_ENDPOINT = Endpoints("ZMQ_SUB_ENDPOINT", (tcp_endpoint(_LOCAL, GAME_SHARD_PORT),), "game_shard's publisher"
                             " execution_service takes signals from", (EXECUTION_SERVICE,))
ZMQ_PRICE_ENDPOINTS = Endpoints("ZMQ_PRICE_ENDPOINTS", _PRICES, "the monitors' publishers execution_service and "
                                "position_tracker read books from", (EXECUTION_SERVICE, POSITION_TRACKER))
ZMQ_KALSHI_ENDPOINT = Endpoint("ZMQ_KALSHI_ENDPOINT", _PRICES[0], "kalshi_monitor's publisher", MIRRORS)
ZMQ_POLYMARKET_ENDPOINT = Endpoint("ZMQ_POLYMARKET_ENDPOINT", _PRICES[1], "polymarket_monitor's publisher", MIRRORS)
ZMQ_GAME_SHARD_ENDPOINT = Endpoint("ZMQ_GAME_SHARD_ENDPOINT", tcp_endpoint(_LOCAL, GAME_SHARD_PORT),
                                   "game_shard's publisher", MIRRORS)
ZMQ_EXECUTION_ENDPOINT = Endpoint("ZMQ_EXECUTION_ENDPOINT", tcp_endpoint(_LOCAL, EXECUTION_SERVICE_PORT),
                                  "execution_service's publisher", (*MIRRORS, POSITION_TRACKER))
ZMQ_POSITION_TRACKER_ENDPOINT = Endpoint("ZMQ_POSITION_TRACKER_ENDPOINT", tcp_endpoint(_LOCAL, POSITION_TRACKER_PORT),
                                         "position_tracker's publisher (`positions.*`)", (ZMQ_LISTENER,))
ZMQ_EXIT_ENDPOINT = Endpoints("ZMQ_EXIT_ENDPOINT", (tcp_endpoint(_LOCAL, POSITION_TRACKER_PORT),),
                              "position_tracker's publisher execution_service takes exit signals from",
                              (EXECUTION_SERVICE,))
ZMQ_LISTENER_ENDPOINTS = Endpoints("ZMQ_LISTENER_ENDPOINTS", (), "every publisher zmq_listener mirrors, instead "
                                   "of the four ZMQ_*_ENDPOINT", (ZMQ_LISTENER,))

# --- operations (every service) ---
LOG_LEVEL = Choice("LOG_LEVEL", "INFO", "log level; DEBUG adds the libraries' own lines", PIPELINE,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), aliases={"WARN": "WARNING"})
LOG_SAMPLE_PER_SEC = Float("LOG_SAMPLE_PER_SEC", 5.0, "sampled hot-path log lines", PUBLISHERS, unit="lines/s",
                           minimum=0.0)
METRICS_PORT = Int("METRICS_PORT", 0, "Prometheus text endpoint (0 = off by hand; the local runtime sets it)",
                   PIPELINE, minimum=0, maximum=65535)
METRICS_HOST = Str("METRICS_HOST", _LOCAL, "host the Prometheus endpoint binds", PIPELINE)
ARBEES_CONFIG_ERROR = Choice("ARBEES_CONFIG_ERROR", "exit", "on a configuration error: exit with code 2, or hold "
                             "until SIGTERM (under a restart policy)", PIPELINE, choices=("exit", "hold"))
ARBEES_TRACEMALLOC = Int("ARBEES_TRACEMALLOC", 0, "trace allocations with N frames; each SIGUSR2 then writes a "
                         "tracemalloc snapshot beside the memory census in `.arbees/tracemalloc/` (0 = off; costs CPU "
                         "and memory: for `bench --memory --tracemalloc N`)", PIPELINE, minimum=0, maximum=100)
ARBEES_RT_PRIORITY = Int("ARBEES_RT_PRIORITY", 10, "SCHED_FIFO priority of the hot path's receiving threads where "
                         "permitted (0 = off)", PIPELINE, minimum=0, maximum=98)
ARBEES_HOME = Str("ARBEES_HOME", "", "the project folder (`.env`, `.arbees/`)", (*PIPELINE, ARBEES),
                  shown_default="the working directory")
ARBEES_STATE_DIR = Str("ARBEES_STATE_DIR", "", "logs, runs, spool, metrics snapshots, embedded servers",
                       (*PIPELINE, ARBEES), shown_default="`.arbees/` in ARBEES_HOME")
ARBEES_ENV_FILE = Str("ARBEES_ENV_FILE", "", "the `.env` file", (*PIPELINE, ARBEES),
                      shown_default="`.env` in ARBEES_HOME")
GLIBC_TUNABLES = Str("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", "glibc's malloc tunables for every service the "
                     "runtimes start (and the image's default): without a tcache_count of its own, `:glibc.malloc."
                     "tcache_count=0` is added (no per-thread cache of freed chunks; `runtime/processes.py` says why)",
                     (ARBEES,))
ARBEES_SERVICE = Str("ARBEES_SERVICE", "", "the service a container runs (the image's CMD, the healthcheck)",
                     PIPELINE, shown_default="set per service by docker-compose.yml")
DATABASE_URL = DatabaseUrl("DATABASE_URL", "", "PostgreSQL (market mapping, paper trades)",
                           (MARKET_DISCOVERY, *MONITORS, GAME_SHARD, EXECUTION_SERVICE, API, POSITION_TRACKER,
                            ZMQ_LISTENER, ORCHESTRATOR, ARBEES),
                           shown_default="none (the local runtime: its embedded server)")

# --- venues: where the books come from ---
KALSHI_SOURCE = Str("KALSHI_SOURCE", "sim", "sim, replay:<file>[@<speed>x] or live", KALSHI_LIVE)
POLYMARKET_SOURCE = Str("POLYMARKET_SOURCE", "sim", "sim, replay:<file>[@<speed>x] or live", POLYMARKET_LIVE)
STALE_FEED_S = Float("STALE_FEED_S", 30.0, "a feed not intact this long gets its quotes cleared", MONITORS, unit="s",
                     minimum=0.0)
VENUE_BACKOFF_MIN_S = Float("VENUE_BACKOFF_MIN_S", 0.5, "first reconnect delay (jittered, doubling)", MONITORS,
                            unit="s", minimum=0.0)
VENUE_BACKOFF_MAX_S = Float("VENUE_BACKOFF_MAX_S", 30.0, "longest reconnect delay", MONITORS, unit="s", minimum=0.0)
HTTPS_PROXY = Str("HTTPS_PROXY", "", "proxy for Polymarket when POLYMARKET_PROXY is unset (also https_proxy)",
                  POLYMARKET_LIVE, also=("https_proxy",))
ALL_PROXY = Str("ALL_PROXY", "", "proxy when HTTPS_PROXY is unset (also all_proxy)", POLYMARKET_LIVE,
                also=("all_proxy",))
NO_PROXY = StrList("NO_PROXY", (), "hosts reached without the proxy (also no_proxy)", POLYMARKET_LIVE,
                   also=("no_proxy",))

# --- Kalshi (live) ---
KALSHI_ENV = Choice("KALSHI_ENV", "prod", "Kalshi environment (hosts; keys are per environment)", KALSHI_LIVE,
                    choices=("prod", "demo"))
KALSHI_WS_URL = Str("KALSHI_WS_URL", "", "WebSocket URL", KALSHI_LIVE, shown_default="by KALSHI_ENV")
KALSHI_REST_URL = Str("KALSHI_REST_URL", "", "REST base URL", KALSHI_LIVE, shown_default="by KALSHI_ENV")
KALSHI_API_KEY_ID = Str("KALSHI_API_KEY_ID", "", "API key id (signs every connection)", KALSHI_LIVE, secret=True)
KALSHI_PRIVATE_KEY_PATH = Str("KALSHI_PRIVATE_KEY_PATH", "", "file holding the API key's RSA private key (PEM)",
                              KALSHI_LIVE, secret=True)
KALSHI_PRIVATE_KEY = Str("KALSHI_PRIVATE_KEY", "", "the PEM itself (`\\n` allowed), when no key file",
                         KALSHI_LIVE, secret=True)
KALSHI_PROXY = Str("KALSHI_PROXY", "", "proxy for Kalshi (none: reached directly)", KALSHI_LIVE)
KALSHI_SERIES = StrList("KALSHI_SERIES", ("KXNBAGAME", "KXNFLGAME", "KXNHLGAME", "KXMLBGAME"), "game series "
                        "discovery lists", KALSHI_LIVE)
KALSHI_REST_MIN_INTERVAL_MS = Float("KALSHI_REST_MIN_INTERVAL_MS", 60.0, "least time between REST calls",
                                    KALSHI_LIVE, unit="ms", minimum=0.0)
KALSHI_REST_MAX_RETRIES = Int("KALSHI_REST_MAX_RETRIES", 6, "retries of a failed REST call", KALSHI_LIVE, minimum=0)
KALSHI_HEARTBEAT_S = Float("KALSHI_HEARTBEAT_S", 10.0, "how often Kalshi pings (its documented heartbeat)",
                           KALSHI_LIVE, unit="s", minimum=0.05)

# --- Polymarket (live) ---
POLYMARKET_WS_URL = Str("POLYMARKET_WS_URL", "wss://ws-subscriptions-clob.polymarket.com/ws/market",
                        "CLOB market WebSocket", POLYMARKET_LIVE)
POLYMARKET_GAMMA_URL = Str("POLYMARKET_GAMMA_URL", "https://gamma-api.polymarket.com", "Gamma discovery API",
                           POLYMARKET_LIVE)
POLYMARKET_GEOBLOCK_URL = Str("POLYMARKET_GEOBLOCK_URL", "https://polymarket.com/api/geoblock", "geoblock check "
                              "logged at start (empty = skip)", POLYMARKET_LIVE, empty_ok=True)
POLYMARKET_PROXY = Str("POLYMARKET_PROXY", "", "proxy for Polymarket (HTTP CONNECT or SOCKS)", POLYMARKET_LIVE)
POLYMARKET_PING_S = Float("POLYMARKET_PING_S", 10.0, "how often a text PING goes out", POLYMARKET_LIVE, unit="s",
                          minimum=0.1)
POLYMARKET_LEAGUES = StrList("POLYMARKET_LEAGUES", ("NBA", "NFL", "NHL", "MLB"), "leagues discovery lists",
                             POLYMARKET_LIVE)
POLYMARKET_SNAPSHOT_TIMEOUT_S = Float("POLYMARKET_SNAPSHOT_TIMEOUT_S", 5.0, "a book not arrived this long after "
                                      "subscribing is subscribed again", POLYMARKET_LIVE, unit="s", minimum=0.1)

# --- simulated venues ---
SIM_SEED = Int("SIM_SEED", 7, "random seed of the simulated books", SIM)
SIM_GAMES = Int("SIM_GAMES", 4, "simulated games at a time (on one day up to 40, over several days beyond)", SIM,
                minimum=1, maximum=400)
SIM_RATE = Float("SIM_RATE", 50.0, "book updates per venue", SIM, unit="msg/s", minimum=0.1)
SIM_DATE = Str("SIM_DATE", "", "the simulated games' date (YYYY-MM-DD)", SIM, shown_default="today (US Eastern)")
SIM_GAME_LENGTH_S = Float("SIM_GAME_LENGTH_S", 600.0, "a game's markets resolve at its end and the next game of its "
                          "slot starts (0 = never)", SIM, unit="s", minimum=0.0)
SIM_MISPRICE_EVERY_S = Float("SIM_MISPRICE_EVERY_S", 30.0, "a cross-venue mispricing this often", SIM, unit="s",
                             minimum=0.0)
SIM_MISPRICE_AT_S = FloatList("SIM_MISPRICE_AT_S", (), "mispricings at these times after start", SIM, unit="s")
SIM_MISPRICE_CENTS = Float("SIM_MISPRICE_CENTS", 12.0, "size of a mispricing", SIM, unit="cents", minimum=0.0)
SIM_MISPRICE_DURATION_MS = Float("SIM_MISPRICE_DURATION_MS", 1000.0, "how long a mispricing lasts", SIM, unit="ms",
                                 minimum=1.0)
SIM_MISPRICE_VENUE = Choice("SIM_MISPRICE_VENUE", "kalshi", "the venue whose book is mispriced", SIM,
                            choices=("kalshi", "polymarket"), aliases={"poly": "polymarket"})
SIM_FAULT_GAP_AT_S = FloatList("SIM_FAULT_GAP_AT_S", (), "sequence gaps at these times (`arbees chaos feed-gap`)",
                               SIM, unit="s")
SIM_LEG_MISS_AT_S = FloatList("SIM_LEG_MISS_AT_S", (), "leg misses at these times (`arbees chaos leg-miss`)", SIM,
                              unit="s")
SIM_LEG_MISS_HOLD_MS = FloatList("SIM_LEG_MISS_HOLD_MS", (0.0,), "how long each leg miss holds the moved book", SIM,
                                 unit="ms")

# --- market discovery ---
DISCOVERY_INTERVAL_S = Float("DISCOVERY_INTERVAL_S", 60.0, "how often both venues' markets are listed again",
                             (MARKET_DISCOVERY,), unit="s", minimum=1.0)
DISCOVERY_RETRY_S = Float("DISCOVERY_RETRY_S", 30.0, "retry after a failed discovery", (MARKET_DISCOVERY,), unit="s",
                          minimum=1.0)
SHARD_ID = Str("SHARD_ID", "", "the shard games are assigned to", (MARKET_DISCOVERY, GAME_SHARD),
               shown_default="market_discovery: shard-1; game_shard: every game (orchestrated: 1)")

# --- game shards and the orchestrator ---
GAME_ASSIGNMENT = Choice("GAME_ASSIGNMENT", "static", "static: a shard evaluates every game (or discovery's SHARD_ID); "
                         "orchestrator: only the games the orchestrator assigned it", SHARDED,
                         choices=("static", "orchestrator"))
SHARD_FEED = Choice("SHARD_FEED", "all", "all: a shard reads every market's prices and counts their gaps as loss; "
                    "held (ZMQ, orchestrator): only its games' markets, less CPU per shard, gaps counted per market",
                    SHARDED, choices=("all", "held"))
SHARD_DEAD_S = Float("SHARD_DEAD_S", 5.0, "a shard silent this long loses its games to the live shards", SHARDED,
                     unit="s", minimum=0.5)
ASSIGNMENT_POLL_MS = Float("ASSIGNMENT_POLL_MS", 250.0, "how often shards heartbeat and services re-read the "
                           "assignments", SHARDED, unit="ms", minimum=10.0)
SHARD_ENDPOINT = Str("SHARD_ENDPOINT", "", "the endpoint others reach this shard's signals at", (GAME_SHARD,),
                     shown_default="tcp://<ZMQ_ADVERTISE_HOST>:<port>")
ZMQ_ADVERTISE_HOST = Str("ZMQ_ADVERTISE_HOST", "127.0.0.1", "host a shard advertises its PUB socket at (auto: "
                         "this host's own address)", (GAME_SHARD,))
MAX_GAMES_PER_SHARD = Int("MAX_GAMES_PER_SHARD", 100, "most games one shard holds", (ORCHESTRATOR,), minimum=1)
ORCHESTRATOR_INTERVAL_MS = Float("ORCHESTRATOR_INTERVAL_MS", 250.0, "how often the orchestrator plans a round",
                                 (ORCHESTRATOR,), unit="ms", minimum=10.0)
GAME_SHARDS = Int("GAME_SHARDS", 1, "how many game shards `arbees up` runs (local and compose)", (ARBEES,), minimum=1)

# --- strategy: edges, sizing, fees ---
MIN_EDGE_PCT = Float("MIN_EDGE_PCT", 0.5, "least edge after fees to signal", ARB, unit="%", minimum=0.0)
MAX_PRICE_AGE_MS = Float("MAX_PRICE_AGE_MS", 2000.0, "oldest price a signal may use", ARB, unit="ms", minimum=0.0)
GAME_COOLDOWN_MS = Float("GAME_COOLDOWN_MS", 10_000.0, "least time between two signals of one game", ARB, unit="ms",
                         minimum=0.0)
MAX_ORDER_CONTRACTS = Float("MAX_ORDER_CONTRACTS", 100.0, "largest order per leg", SIZING, unit="contracts",
                            minimum=1.0)
KALSHI_TAKER_FEE_RATE = Float("KALSHI_TAKER_FEE_RATE", 0.07, "Kalshi's published taker fee rate", FEES,
                              minimum=0.0)
POLYMARKET_TAKER_FEE_RATE = Float("POLYMARKET_TAKER_FEE_RATE", 0.03, "Polymarket's published sports taker fee rate",
                                  FEES, minimum=0.0)
FEE_RATES_AS_OF = Str("FEE_RATES_AS_OF", "2026-11-24", "the date the fee rates were published", FEES)

# --- execution ---
PAPER_TRADING = Bool("PAPER_TRADING", True, "paper orders only (false is refused: no live order entry)",
                     (EXECUTION_SERVICE,))
MAX_EXPOSURE_USD = Float("MAX_EXPOSURE_USD", 1000.0, "cost of the open positions allowed, freed as they settle",
                         (EXECUTION_SERVICE,), unit="USD", minimum=0.0)
LEG_POLICY = Choice("LEG_POLICY", "joint", "how the two legs are filled (README: Design choices)",
                    (EXECUTION_SERVICE,), choices=("joint", "sequential"))
SIGNAL_MAX_AGE_MS = Float("SIGNAL_MAX_AGE_MS", 5000.0, "a signal older than this is rejected", (EXECUTION_SERVICE,),
                          unit="ms", minimum=1.0)
EXECUTED_IDS_WINDOW_S = Float("EXECUTED_IDS_WINDOW_S", 600.0, "executed signal ids kept in memory this long (at least "
                              "SIGNAL_MAX_AGE_MS; older signals are refused)", (EXECUTION_SERVICE,), unit="s",
                              minimum=1.0)
EXECUTED_IDS_MAX = Int("EXECUTED_IDS_MAX", 100_000, "at most this many executed signal ids kept in memory",
                       (EXECUTION_SERVICE,), minimum=1)
PRICE_DRAIN_MS = Float("PRICE_DRAIN_MS", 2.0, "queued prices are read on each signal and at least this often (ZMQ)",
                       (EXECUTION_SERVICE,), unit="ms", minimum=0.1)
PRICE_CATCHUP_MS = Float("PRICE_CATCHUP_MS", 5.0, "a signal waits this long at most for the prices it was derived "
                         "from (they come on another connection or thread)", (EXECUTION_SERVICE,), unit="ms", minimum=0.0)
PAPER_ORDER_LATENCY_MS = Float("PAPER_ORDER_LATENCY_MS", 0.0, "an IOC paper order meets the book as it stands this long "
                               "after its signal arrives: the venue round trip (0: at once)", (EXECUTION_SERVICE,),
                               unit="ms", minimum=0.0)
SPOOL_PATH = Str("SPOOL_PATH", "", "trades spooled while PostgreSQL is away", (EXECUTION_SERVICE, ARBEES),
                 shown_default="`spool/execution_service.jsonl` in ARBEES_STATE_DIR")
SPOOL_FSYNC = Bool("SPOOL_FSYNC", False, "fsync the spool after each trade", (EXECUTION_SERVICE,))
KILL_SWITCH_FILE = Str("KILL_SWITCH_FILE", "", "while this file exists no order is placed", (EXECUTION_SERVICE,),
                       shown_default="`kill_switch` in ARBEES_STATE_DIR")

# --- zmq_listener (the Redis mirror) ---
MIRROR_BUFFER_MAX = Int("MIRROR_BUFFER_MAX", 200_000, "frames kept while Redis is away", (ZMQ_LISTENER,),
                        unit="frames", minimum=100)
MIRROR_LOG_PER_SEC = Float("MIRROR_LOG_PER_SEC", 2.0, "`Mirrored` lines per stream", (ZMQ_LISTENER,),
                           unit="lines/s", minimum=0.0)
MIRROR_FLUSH_MS = Float("MIRROR_FLUSH_MS", 5.0, "frames are written in one batch per window", (ZMQ_LISTENER,),
                        unit="ms", minimum=0.0)
MIRROR_BATCH_MAX = Int("MIRROR_BATCH_MAX", 512, "a batch is written when this many frames are pending",
                       (ZMQ_LISTENER,), unit="frames", minimum=1)
MIRROR_NICE = Int("MIRROR_NICE", 10, "CPU niceness (off the hot path)", (ZMQ_LISTENER,), minimum=0)

# --- position_tracker (marks, settlement, exits) ---
POSITION_MARK_MS = Float("POSITION_MARK_MS", 500.0, "how often open pairs are marked, stored and published",
                         (POSITION_TRACKER,), unit="ms", minimum=10.0)
POSITION_RELOAD_S = Float("POSITION_RELOAD_S", 2.0, "how often the open pairs are re-read without a trade result",
                          (POSITION_TRACKER,), unit="s", minimum=0.1)
EXIT_MIN_GAIN_CENTS = Float("EXIT_MIN_GAIN_CENTS", 1.0, "an exit is signalled when selling both legs beats "
                            "settlement by this much (negative = no exits)", (POSITION_TRACKER,), unit="¢/contract")
EXIT_COOLDOWN_MS = Float("EXIT_COOLDOWN_MS", 2000.0, "least time between two exit signals of one pair",
                         (POSITION_TRACKER,), unit="ms", minimum=0.0)

# --- api (the operators' dashboard) ---
API_HOST = Str("API_HOST", _LOCAL, "host the dashboard binds", (API,))
API_PORT = Int("API_PORT", _API_HTTP_PORT, "the dashboard's HTTP port", (API, ARBEES), minimum=1, maximum=65535)
API_PUSH_MS = Float("API_PUSH_MS", 250.0, "how often changes go to the browsers", (API,), unit="ms", minimum=20.0)
API_CLIENT_QUEUE = Int("API_CLIENT_QUEUE", 64, "updates a browser may fall behind before they are dropped", (API,),
                       unit="updates", minimum=2)
API_WINDOW_S = Float("API_WINDOW_S", 300.0, "the dashboard's latency and rate windows", (API,), unit="s",
                     minimum=10.0)

# --- the CLI and its runtimes ---
ARBEES_PORT_BASE = Int("ARBEES_PORT_BASE", 0, "local runtime: ports from here (ZMQ +0..3 and +5, api +4, metrics "
                       "+8..) to run several stacks (0 = the plan's)", (ARBEES,), minimum=0)
ARBEES_REDIS_HOST_PORT = Int("ARBEES_REDIS_HOST_PORT", 0, "compose: host port of Redis", (ARBEES,), minimum=1,
                             shown_default="any free port")
ARBEES_POSTGRES_HOST_PORT = Int("ARBEES_POSTGRES_HOST_PORT", 0, "compose: host port of PostgreSQL", (ARBEES,),
                                minimum=1, shown_default="any free port")
ARBEES_API_HOST_PORT = Int("ARBEES_API_HOST_PORT", 8000, "compose: host port of the dashboard", (ARBEES,), minimum=1)
DOCKER_HOST = Str("DOCKER_HOST", "", "the docker engine (docker's own variable)", (ARBEES,),
                  shown_default="the default socket")
