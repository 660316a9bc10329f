#!/usr/bin/env node
// A throw-away single-node Ceph cluster serving S3 on loopback, for tests, benchmarks and the
// README walk-through: one mon, one mgr, one OSD (bluestore on a sparse file, or memstore), and
// radosgw (beast frontend) on 127.0.0.1. Everything lives in one folder: config, data, logs,
// sockets, pid files; nothing in /etc/ceph or /var/lib/ceph, no systemd. Uses Debian's packages:
//   apt-get install --no-install-recommends ceph-mon ceph-mgr ceph-osd radosgw ceph-common
// What it takes to make Ceph 16 run like this is recorded in ../shared/DESIGN.md section 7.
// Ceph's debug logging is off (every subsystem at 0/0: errors only; see DEBUG_SUBSYSTEMS):
// RVM_CEPH_DEBUG=1 keeps Ceph's default levels.
//
//   node scripts/radosgw.js start DIR [--memstore]   prints the AWS_* variables to use
//   node scripts/radosgw.js stop DIR                   stops the processes that start launched
//
// As a module: `startRadosgw({ dir })` resolves to { endpoint, accessKeyId, secretAccessKey,
// region, env, stop() }. stop() ends exactly the processes it started (by pid, never by name):
// radosgw first (SIGKILL after 3 s: it can ignore SIGTERM for minutes), then mgr and OSD, then
// the mon. `radosgwAvailable()` says whether the packages are installed.

import { spawn, execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const PROGRAMS = ["ceph-mon", "ceph-mgr", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool"];

function onPath(name) {
  for (const d of (process.env.PATH ?? "/usr/bin:/bin").split(":").concat(["/usr/bin", "/usr/sbin"])) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return undefined;
}

/** The Ceph programs this needs that are not installed (empty when all are). */
export function radosgwMissing() {
  return PROGRAMS.filter((p) => !onPath(p));
}

export function radosgwAvailable() {
  return radosgwMissing().length === 0;
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const port = s.address().port;
      s.close(() => res(port));
    });
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns true or `ms` pass (start-up of external daemons). */
async function until(what, ms, probe, daemons) {
  const end = Date.now() + ms;
  for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
    for (const d of daemons) if (d.exited) throw new Error(`radosgw: ${d.name} exited (${d.exited}) while waiting for ${what}; see ${d.log}`);
    try {
      if (await probe()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`radosgw: timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(wait);
  }
}

/**
 * Ceph's logging subsystems (Ceph 16). Their default levels (1/5 for most, 4/5 for rocksdb and
 * leveldb, 2/5 for mgr) format and keep every entry up to level 5 in memory, and radosgw writes
 * three lines per request to its log file: CPU on every GET, on the 2-core host where rvm and the
 * cluster share the CPU. Ceph's performance guidance turns debug logging off for measurements:
 * 0/0 here (errors are still logged). Measured on the bench's 256 MiB guest, a first store
 * restore, spawn -> answer, one cluster toggled between alternating runs: radosgw's CPU median
 * 100 -> 75 ms (docs/ARCHITECTURE.md, "The CPU budget of a store restore"). RVM_CEPH_DEBUG=1 keeps
 * Ceph's default levels (to look into the cluster itself).
 */
const DEBUG_SUBSYSTEMS = ("asok auth bdev bluefs bluestore buffer cephfs_mirror cephsqlite civetweb client compressor context crush " +
  "crypto dpdk eventtrace filer filestore finisher fuse heartbeatmap immutable_obj_cache javaclient journal journaler kstore " +
  "leveldb lockdep mds mds_balancer mds_locker mds_log mds_log_expire mds_migrator memdb mgr mgrc mon monc ms none objclass " +
  "objectcacher objecter optracker osd paxos perfcounter prioritycache rados rbd rbd_mirror rbd_pwl rbd_replay refs reserver " +
  "rgw rgw_sync rocksdb striper test throttle timer tp").split(" ");

function debugLevels() {
  return process.env.RVM_CEPH_DEBUG === "1" ? "" : DEBUG_SUBSYSTEMS.map((s) => `debug_${s} = 0/0\n`).join("");
}

function config(dir, monPort, rgwPort, fsid, memstore) {
  return `[global]
fsid = ${fsid}
mon_host = 127.0.0.1:${monPort}
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
client_mount_timeout = 30
run_dir = ${dir}/run
admin_socket = ${dir}/run/$name.asok
pid_file = ${dir}/run/$name.pid
log_file = ${dir}/log/$name.log
crash_dir = ${dir}/crash
keyring = ${dir}/keyring
mon_cluster_log_file = ${dir}/log/cluster.log
mon_data = ${dir}/mon/$cluster-$id
mgr_data = ${dir}/mgr/$cluster-$id
osd_data = ${dir}/osd/$cluster-$id
rgw_data = ${dir}/rgw/$cluster-$id
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_data_avail_crit = 1
mon_data_avail_warn = 2
paxos_propose_interval = 0.1
mon_warn_on_pool_no_redundancy = false
${memstore ? "osd_objectstore = memstore\nmemstore_device_bytes = 8589934592" : `osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = 21474836480
bluestore_cache_size = 134217728
osd_memory_target = 536870912`}
rgw_frontends = "beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1"
rgw_dns_name = 127.0.0.1
${debugLevels()}`;
}

class Daemon {
  constructor(name, args, log, detached) {
    this.name = name;
    this.log = log;
    this.exited = undefined;
    this.child = spawn(name, args, { stdio: ["ignore", "ignore", "ignore"], detached });
    if (detached) this.child.unref();
    this.pid = this.child.pid;
    this.closed = new Promise((r) => this.child.once("exit", (code, sig) => {
      this.exited = sig ?? `code ${code}`;
      r();
    }));
    this.child.once("error", (e) => {
      this.exited = e.message;
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs) {
    if (this.exited) return;
    try {
      this.child.kill("SIGTERM");
    } catch {
      return;
    }
    const t = setTimeout(() => {
      try {
        if (!this.exited) this.child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, graceMs);
    await this.closed;
    clearTimeout(t);
  }
}

async function ceph(conf, ...args) {
  const { stdout } = await run("ceph", ["-c", conf, "--connect-timeout", "20", ...args], { timeout: 30_000 });
  return stdout;
}

function httpUp(port) {
  return new Promise((res) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.write("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    });
    let data = "";
    s.on("data", (b) => (data += b.toString("latin1")));
    s.once("error", () => res(false));
    s.once("close", () => res(/^HTTP\/1\.[01] 200/.test(data)));
    s.setTimeout(2000, () => s.destroy());
  });
}

/**
 * Starts the cluster in `dir` (created; must be on a file system that supports O_DIRECT for
 * bluestore, i.e. not tmpfs). Options: memstore (keep objects in RAM: faster start), timeoutMs.
 */
export async function startRadosgw(opts = {}) {
  const missing = radosgwMissing();
  if (missing.length) throw new Error(`radosgw: not installed (${missing.join(", ")} missing)`);
  const dir = resolve(opts.dir);
  const memstore = opts.memstore ?? false;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const detached = opts.detached ?? false;
  for (const d of ["run", "log", "crash", "mon", "mgr/ceph-x", "osd/ceph-0", "rgw/ceph-rgw.a"]) mkdirSync(join(dir, d), { recursive: true });
  const monPort = await freePort();
  const rgwPort = await freePort();
  const fsid = randomUUID();
  const conf = join(dir, "ceph.conf");
  writeFileSync(conf, config(dir, monPort, rgwPort, fsid, memstore));
  const daemons = [];
  const pidFile = join(dir, "rvm-radosgw.pids");
  const remember = () => writeFileSync(pidFile, daemons.map((d) => `${d.name} ${d.pid}`).join("\n") + "\n");
  const stop = async () => {
    // radosgw first, then mgr and OSD, then the mon.
    const order = ["radosgw", "ceph-mgr", "ceph-osd", "ceph-mon"];
    for (const name of order) {
      await Promise.all(daemons.filter((d) => d.name === name).map((d) => d.stop(name === "radosgw" ? 3000 : 10_000)));
    }
    rmSync(pidFile, { force: true });
  };
  try {
    await run("ceph-authtool", ["--create-keyring", join(dir, "keyring"), "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"]);
    await run("monmaptool", ["--create", "--fsid", fsid, "--add", "a", `127.0.0.1:${monPort}`, join(dir, "monmap")]);
    await run("ceph-mon", ["-c", conf, "--mkfs", "-i", "a", "--monmap", join(dir, "monmap"), "--keyring", join(dir, "keyring")]);
    daemons.push(new Daemon("ceph-mon", ["-c", conf, "-f", "-i", "a"], join(dir, "log/mon.a.log"), detached));
    remember();
    await until("the mon", timeoutMs, async () => (await ceph(conf, "mon", "stat")).includes("quorum"), daemons);
    daemons.push(new Daemon("ceph-mgr", ["-c", conf, "-f", "-i", "x"], join(dir, "log/mgr.x.log"), detached));
    remember();
    const id = (await ceph(conf, "osd", "create")).trim();
    await run("ceph-osd", ["-c", conf, "--mkfs", "-i", id], { timeout: timeoutMs });
    daemons.push(new Daemon("ceph-osd", ["-c", conf, "-f", "-i", id], join(dir, `log/osd.${id}.log`), detached));
    remember();
    await until("the OSD", timeoutMs, async () => /1 up/.test(await ceph(conf, "osd", "stat")), daemons);
    daemons.push(new Daemon("radosgw", ["-c", conf, "-f", "-n", "client.rgw.a"], join(dir, "log/client.rgw.a.log"), detached));
    remember();
    await until("radosgw", timeoutMs, () => httpUp(rgwPort), daemons);
    const accessKeyId = "RVM" + randomBytes(8).toString("hex").toUpperCase();
    const secretAccessKey = randomBytes(24).toString("base64url");
    await run("radosgw-admin", ["-c", conf, "user", "create", "--uid=rvm", "--display-name=rvm", `--access-key=${accessKeyId}`, `--secret=${secretAccessKey}`], { timeout: 60_000 });
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    const region = "default";
    const env = {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_REGION: region,
    };
    writeFileSync(join(dir, "env"), Object.entries(env).map(([k, v]) => `export ${k}=${v}`).join("\n") + "\n", { mode: 0o600 });
    const daemon = (name) => daemons.find((d) => d.name === name);
    return {
      dir, endpoint, accessKeyId, secretAccessKey, region, env, stop,
      /** Pauses radosgw (SIGSTOP) / lets it go on (SIGCONT): an unreachable store for tests. */
      pause: () => daemon("radosgw").child.kill("SIGSTOP"),
      resume: () => daemon("radosgw").child.kill("SIGCONT"),
      pids: () => daemons.map((d) => ({ name: d.name, pid: d.pid })),
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Stops the daemons a `start` in `dir` (maybe another process) launched, by their recorded pids. */
export async function stopRadosgw(dir) {
  const pidFile = join(resolve(dir), "rvm-radosgw.pids");
  if (!existsSync(pidFile)) return;
  const rows = readFileSync(pidFile, "utf8").trim().split("\n").map((l) => l.split(" ")).map(([name, pid]) => ({ name, pid: Number(pid) }));
  const alive = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  // Only a pid that still runs the program we started is ours to signal.
  const ours = (r) => {
    try {
      return alive(r.pid) && readFileSync(`/proc/${r.pid}/comm`, "utf8").trim() === r.name.slice(0, 15);
    } catch {
      return alive(r.pid);
    }
  };
  for (const name of ["radosgw", "ceph-mgr", "ceph-osd", "ceph-mon"]) {
    for (const r of rows.filter((x) => x.name === name && ours(x))) {
      process.kill(r.pid, "SIGTERM");
      const end = Date.now() + (name === "radosgw" ? 3000 : 10_000);
      while (alive(r.pid) && Date.now() < end) await sleep(50);
      if (alive(r.pid)) process.kill(r.pid, "SIGKILL");
      while (alive(r.pid)) await sleep(20);
    }
  }
  rmSync(pidFile, { force: true });
}

async function main(argv) {
  const [cmd, dir, ...rest] = argv;
  if ((cmd !== "start" && cmd !== "stop") || !dir) {
    console.error("usage: node scripts/radosgw.js start DIR [--memstore] | stop DIR");
    process.exit(2);
  }
  if (cmd === "stop") {
    await stopRadosgw(dir);
    return;
  }
  const missing = radosgwMissing();
  if (missing.length) {
    console.error(`radosgw.js: missing ${missing.join(", ")}: apt-get install --no-install-recommends ceph-mon ceph-mgr ceph-osd radosgw ceph-common`);
    process.exit(1);
  }
  // The daemons keep running after this process exits (in their own process group).
  const gw = await startRadosgw({ dir, memstore: rest.includes("--memstore"), detached: true });
  console.log(`# radosgw on ${gw.endpoint}; stop with: node scripts/radosgw.js stop ${dir}`);
  console.log(readFileSync(join(gw.dir, "env"), "utf8").trimEnd());
  process.exit(0);
}

if (process.argv[1] && resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
