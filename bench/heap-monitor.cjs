// Heap and RSS monitor for a gateway under the bench (bench/README "round 4"):
//   BENCH_GATEWAY_NODE_ARGS='--require ./bench/heap-monitor.cjs' npm run bench -- …
// Every 250 ms, one JSON line per `serve` process into /tmp/taskhook-heap/<pid>.jsonl: VmRSS
// (anonymous / file-backed), each V8 space's used/committed MiB, external and ArrayBuffer
// memory, and the GC counts and times so far. A file named
// /tmp/taskhook-heap/start-<name>-<seconds>-<0|1> starts a sampling heap profile of that many
// seconds (written as <name>-<pid>.heapprofile) of what survived the young generation
// (0: only objects that lived past a scavenge or are alive at the end; 1: every allocation).
// Promotion per scavenge, exactly: add --trace-gc-nvp and the bench's --verbose.
const fs = require('node:fs');
const v8 = require('node:v8');
const { PerformanceObserver, constants } = require('node:perf_hooks');
const inspector = require('node:inspector');
if (!process.argv.includes('serve')) return;
const dir = '/tmp/taskhook-heap';
fs.mkdirSync(dir, { recursive: true });
const out = fs.openSync(`${dir}/${process.pid}.jsonl`, 'w');
const gc = { minor: 0, major: 0, minorMs: 0, majorMs: 0, incr: 0, weak: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const k = e.detail?.kind ?? e.kind;
    if (k === constants.NODE_PERFORMANCE_GC_MINOR) { gc.minor++; gc.minorMs += e.duration; }
    else if (k === constants.NODE_PERFORMANCE_GC_MAJOR) { gc.major++; gc.majorMs += e.duration; }
    else if (k === constants.NODE_PERFORMANCE_GC_INCREMENTAL) gc.incr++;
    else gc.weak++;
  }
}).observe({ entryTypes: ['gc'] });
const status = () => {
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  const f = (n) => Number((s.match(new RegExp(`${n}:\\s+(\\d+)`)) || [])[1]) / 1024;
  return { rss: f('VmRSS'), anon: f('RssAnon'), file: f('RssFile') };
};
const t0 = Date.now();
let session, profEnd = 0, profName;
setInterval(() => {
  const m = process.memoryUsage();
  const sp = {};
  for (const x of v8.getHeapSpaceStatistics()) sp[x.space_name.replace('_space', '')] = [+(x.space_used_size / 1048576).toFixed(1), +(x.space_size / 1048576).toFixed(1)];
  fs.writeSync(out, JSON.stringify({ t: Date.now() - t0, ...status(), heapT: +(m.heapTotal / 1048576).toFixed(1), ext: +(m.external / 1048576).toFixed(1), ab: +(m.arrayBuffers / 1048576).toFixed(1), sp, gc: { ...gc } }) + '\n');
  // profile trigger: /tmp/gcmon/start-<name>-<seconds>-<minor 0|1>
  if (!session) {
    const trig = fs.readdirSync(dir).find((f) => f.startsWith('start-'));
    if (trig) {
      fs.unlinkSync(`${dir}/${trig}`);
      const [, name, secs, minor] = trig.split('-');
      session = new inspector.Session();
      session.connect();
      profName = name;
      profEnd = Date.now() + Number(secs) * 1000;
      session.post('HeapProfiler.enable', () =>
        session.post('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: minor === '1' }, (err) => err && fs.writeSync(out, JSON.stringify({ err: String(err.message) }) + '\n')));
    }
  } else if (profEnd && Date.now() > profEnd) {
    profEnd = 0;
    session.post('HeapProfiler.stopSampling', (err, r) => {
      if (!err) fs.writeFileSync(`${dir}/${profName}-${process.pid}.heapprofile`, JSON.stringify(r.profile));
      session.disconnect();
      session = undefined;
    });
  }
}, 250).unref();
