// The @platformatic/kafka runner of the broker-neutral compatibility suite. Its contract (arguments,
// output, rules every scenario follows) is compat_tests/suite/README.md. @platformatic/kafka (pinned
// in package.json) is a pure JavaScript implementation of the Kafka protocol, written independently
// of librdkafka and of the Java client, so it checks a broker against a second, separately written
// set of request encoders and response decoders.
//
// Usage:
//   node suite.mjs --bootstrap HOST:PORT[,HOST:PORT...] --prefix PREFIX --api-versions FILE
//                  [--only REGEX] [--timeout-ms N]
// stdout: one `PASS|FAIL|SKIP platformatic/<scenario>[: reason]` line per scenario, nothing else.
// stderr: progress and, for a failure, the requests the scenario sent. Exit status: 0 when no
// scenario failed, 1 when one did, 2 on a usage error. Without --api-versions the runner asks the
// broker itself (ApiVersions v3) and says so on stderr; scripts/compat.sh always passes the file.
//
// Client behaviour relied on (@platformatic/kafka 1.35.0, dist/):
// - clients/base/base.js [kGetApi]: a request uses the highest version in the broker's advertised
//   range for which the client has an encoder (the exported `<api>V<n>` modules). A scenario runs
//   only when that intersection is non-empty for every API it needs; otherwise it is SKIPped as a
//   limitation of this client, not of the broker.
// - apis/consumer/fetch-v12.js writes the topic *id* where Fetch v12 expects the topic name, and the
//   consumer always fills in ids, so this client reads only with Fetch v13+ (topic ids, KIP-516).
// - protocol/compression.js: gzip and zstd come from node:zlib (zstd only where node:zlib has
//   zstdCompressSync, Node >= 22.15), snappy and lz4 from @platformatic/wasm-utils.
// - Consumer.fetch() hands back the parsed Fetch response: record batches with their header fields
//   (attributes, producer id, first sequence) and records whose key, value and header values are
//   null or a Buffer, so null and empty stay distinct; headers are an ordered array of pairs.
// - The group consumer's stream (clients/consumer/messages-stream.js) reads a null as `undefined`,
//   and Message.commit() commits offset + 1 (the next offset to read).
// - One send() puts the records for one partition into one record batch
//   (apis/producer/produce-v*.js); a record's explicit `partition` is used as given.
// - Producer({ idempotent: true }) gets a producer id with InitProducerId and numbers the batches
//   of each partition; a non-idempotent send() with producerId/producerEpoch writes first
//   sequence 0 (protocol/records.js createRecordsBatch).

import { randomBytes } from 'node:crypto'
import diagnosticsChannel from 'node:diagnostics_channel'
import { readFileSync, writeSync } from 'node:fs'
import { setTimeout as delay } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import * as kafka from '@platformatic/kafka'

const {
  Admin, Consumer, Producer, protocolAPIsByName: API, compressionsAlgorithms,
  ConfigResourceTypes, ConfigSources, IncrementalAlterConfigOperationTypes, FetchIsolationLevels
} = kafka

const CLIENT = 'platformatic'
const CLIENT_VERSION = (() => {
  try {
    const pkg = new URL('../package.json', import.meta.resolve('@platformatic/kafka'))
    return JSON.parse(readFileSync(pkg, 'utf8')).version
  } catch {
    return 'unknown'
  }
})()
const CLIENT_NAME = `@platformatic/kafka ${CLIENT_VERSION}`

// Kafka error codes the scenarios expect (clients/src/main/java/org/apache/kafka/common/protocol/Errors.java).
const ERR = {
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  DUPLICATE_SEQUENCE_NUMBER: 46,
  NON_EMPTY_GROUP: 68,
  GROUP_ID_NOT_FOUND: 69
}
const EARLIEST = -2n // ListOffsetsRequest.EARLIEST_TIMESTAMP
const LATEST = -1n // ListOffsetsRequest.LATEST_TIMESTAMP

// ---- arguments ---------------------------------------------------------------------------------

function usage (message) {
  process.stderr.write(`suite.mjs: ${message}\n` +
    'usage: node suite.mjs --bootstrap HOST:PORT[,HOST:PORT...] --prefix PREFIX ' +
    '--api-versions FILE [--only REGEX] [--timeout-ms N]\n')
  process.exit(2)
}

let args
try {
  args = parseArgs({
    options: {
      bootstrap: { type: 'string' },
      prefix: { type: 'string' },
      'api-versions': { type: 'string' },
      only: { type: 'string' },
      'timeout-ms': { type: 'string' },
      help: { type: 'boolean' }
    },
    strict: true,
    allowPositionals: false
  }).values
} catch (error) {
  usage(error.message)
}
if (args.help) usage('help requested')

const BOOTSTRAP = (args.bootstrap ?? '').split(',').map(s => s.trim()).filter(Boolean)
if (!BOOTSTRAP.length) usage('--bootstrap is required')
for (const b of BOOTSTRAP) if (!/^[^\s:]+:\d+$|^\[[0-9a-fA-F:.]+\]:\d+$/.test(b)) usage(`--bootstrap: "${b}" is not host:port`)

// A generated prefix keeps a hand-run from colliding with an earlier one; the orchestrator passes its own.
const PREFIX = args.prefix ?? `compat-${Date.now().toString(36)}-`
if (!/^[A-Za-z0-9._-]*$/.test(PREFIX)) usage('--prefix may only contain [A-Za-z0-9._-]')

let ONLY = null
if (args.only !== undefined) {
  try {
    ONLY = new RegExp(args.only)
  } catch (error) {
    usage(`--only: ${error.message}`)
  }
}

const TIMEOUT_MS = args['timeout-ms'] === undefined ? 30_000 : Number(args['timeout-ms'])
if (!Number.isInteger(TIMEOUT_MS) || TIMEOUT_MS <= 0) usage('--timeout-ms must be a positive integer')

// Client-side bounds derived from the wait deadline. A request must be able to fail (and be retried)
// inside one wait, so the request timeout is a fraction of it; a JoinGroup is held by the
// coordinator for up to the rebalance timeout (plus group.initial.rebalance.delay.ms, 3 s by
// default) and gets its own floor.
const REQUEST_TIMEOUT_MS = Math.min(Math.max(Math.floor(TIMEOUT_MS / 2), 2000), 15_000)
const SESSION_TIMEOUT_MS = 10_000 // inside Kafka's default group.min/max.session.timeout.ms (6 s .. 30 min)
const REBALANCE_TIMEOUT_MS = 10_000
const GROUP_REQUEST_TIMEOUT_MS = Math.max(REQUEST_TIMEOUT_MS, REBALANCE_TIMEOUT_MS + 8_000)
// A scenario makes several waits in a row; this bounds the whole of one so a hang cannot stop the run.
const SCENARIO_BOUND_MS = Math.max(TIMEOUT_MS * 6, 60_000)
const CLOSE_BOUND_MS = Math.min(TIMEOUT_MS, 10_000)

// ---- output ------------------------------------------------------------------------------------

// Synchronous writes: the process ends with process.exit(), which must not cut a line short.
const out = line => writeSync(1, `${line}\n`)
const err = line => writeSync(2, `${line}\n`)
const runStarted = Date.now()
const stamp = () => `${((Date.now() - runStarted) / 1000).toFixed(1)}s`

// One line, bounded: FAIL reasons must stay on their line.
const oneLine = (s, max = 600) => {
  const flat = String(s).replace(/\s+/g, ' ').trim()
  return flat.length > max ? `${flat.slice(0, max)}...` : flat
}

// The client nests its errors (MultipleErrors > ResponseError > ProtocolError); this flattens the
// chain into one readable sentence that keeps the API, version and Kafka error names.
function errorText (error, depth = 0) {
  if (error === null || error === undefined) return 'no error'
  if (!(error instanceof Error)) return String(error)
  let text = error.message || error.name
  if (error.apiId !== undefined) text += ` [${error.apiId} (${error.apiCode})${error.serverErrorMessage ? `: ${error.serverErrorMessage}` : ''}${error.path && error.path !== '/' ? ` at ${error.path}` : ''}]`
  if (depth < 4) {
    const inner = (error.errors ?? []).filter(Boolean).map(e => errorText(e, depth + 1))
    // A retried operation repeats the same error; say it once.
    const unique = [...new Set(inner)]
    if (unique.length) text += `: ${unique.join('; ')}`
    if (error.cause) text += ` (cause: ${errorText(error.cause, depth + 1)})`
  }
  return text
}

// Does the error chain carry this Kafka error code?
const hasCode = (error, code) => Boolean(error?.findBy?.('apiCode', code))

// ---- assertions --------------------------------------------------------------------------------

// A failed check is never transient: it ends a wait at once instead of being polled again.
function fatal (message) {
  const error = new Error(message)
  error.fatal = true
  return error
}
function check (condition, message) {
  if (!condition) throw fatal(typeof message === 'function' ? message() : message)
}

function showBytes (b) {
  if (b === null || b === undefined) return 'null'
  if (!Buffer.isBuffer(b)) return `${typeof b}:${String(b)}`
  if (b.length === 0) return 'empty'
  if (b.length > 48) return `<${b.length} bytes, starting 0x${b.subarray(0, 8).toString('hex')}>`
  return /^[\x20-\x7e]*$/.test(b.toString('latin1')) ? JSON.stringify(b.toString('latin1')) : `0x${b.toString('hex')}`
}
// null and empty are different values: a null is only equal to a null.
function sameBytes (a, b) {
  if (a === null || a === undefined) return b === null || b === undefined
  return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b)
}

// `want` = { key, value, headers: [[name, Buffer|null]], timestamp? }; `got` = a record from read().
function recordDiff (got, want) {
  if (!sameBytes(got.key, want.key)) return `key ${showBytes(got.key)}, expected ${showBytes(want.key)}`
  if (!sameBytes(got.value, want.value)) return `value ${showBytes(got.value)}, expected ${showBytes(want.value)}`
  const wantHeaders = want.headers ?? []
  if (got.headers.length !== wantHeaders.length) {
    return `${got.headers.length} headers (${got.headers.map(([k]) => showBytes(k)).join(',')}), expected ${wantHeaders.length} (${wantHeaders.map(([k]) => k).join(',')})`
  }
  for (let h = 0; h < wantHeaders.length; h++) {
    const [wk, wv] = wantHeaders[h]
    const [gk, gv] = got.headers[h]
    if (!sameBytes(gk, Buffer.from(wk))) return `header ${h} name ${showBytes(gk)}, expected ${JSON.stringify(wk)}`
    if (!sameBytes(gv, wv)) return `header ${h} (${wk}) value ${showBytes(gv)}, expected ${showBytes(wv)}`
  }
  if (want.timestamp !== undefined && got.timestamp !== want.timestamp) return `timestamp ${got.timestamp}, expected ${want.timestamp}`
  return null
}

// The records of one partition are exactly `want`, in order, at consecutive offsets from `base`.
function expectRecords (got, want, where, base = 0n) {
  check(got.length === want.length, `${where}: read ${got.length} records, expected ${want.length}`)
  for (let i = 0; i < want.length; i++) {
    const offset = base + BigInt(i)
    check(got[i].offset === offset, `${where}: record ${i} is at offset ${got[i].offset}, expected ${offset} (lost, duplicated or reordered)`)
    const diff = recordDiff(got[i], want[i])
    check(diff === null, () => `${where}: record at offset ${offset}: ${diff}`)
  }
}

// What the producer takes for one expected record. Header names become distinct Buffer objects so
// that a Map can hold the same name twice (Kafka headers may repeat a name).
function toMessage (topic, partition, rec) {
  const message = {
    topic,
    partition,
    key: rec.key,
    value: rec.value,
    headers: new Map((rec.headers ?? []).map(([k, v]) => [Buffer.from(k), v]))
  }
  if (rec.timestamp !== undefined) message.timestamp = rec.timestamp
  return message
}

// ---- the broker's APIs and what this client can send -------------------------------------------

function parseApiVersions (text, source) {
  const apis = new Map()
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim()
    if (!line) continue
    const fields = line.split(/\s+/)
    if (fields.length !== 3 || !fields.every(f => /^-?\d+$/.test(f))) usage(`${source}:${n + 1}: expected "api_key min_version max_version", got "${raw}"`)
    const [key, min, max] = fields.map(Number)
    apis.set(key, { min, max })
  }
  return apis
}

// The versions this client has an encoder for, read from its exports (`produceV7`, `fetchV17`, ...):
// exactly the modules [kGetApi] picks from.
function clientVersions (name) {
  const stem = name[0].toLowerCase() + name.slice(1) + 'V'
  const versions = []
  for (const [exported, value] of Object.entries(kafka)) {
    if (exported.startsWith(stem) && /^\d+$/.test(exported.slice(stem.length)) && typeof value?.api === 'function') {
      versions.push(Number(exported.slice(stem.length)))
    }
  }
  return versions.sort((a, b) => a - b)
}
const span = vs => (vs.length ? (vs[0] === vs[vs.length - 1] ? `v${vs[0]}` : `v${vs[0]}-${vs[vs.length - 1]}`) : 'no version')

// Why a requirement { api, min?, why?, only? } cannot be met, or null when it can (`only` replaces
// the versions read from the exports where the client always sends one). The version the client
// will send is the highest one both sides have; `min` is what the scenario's behaviour needs.
function unmet (req, brokerApis) {
  const key = API[req.api]
  const broker = brokerApis.get(key)
  if (!broker) return `the broker does not advertise ${req.api} (key ${key})`
  const ours = req.only ?? clientVersions(req.api)
  const usable = ours.filter(v => v >= broker.min && v <= broker.max)
  if (!usable.length) {
    return `${CLIENT_NAME} implements ${req.api} (key ${key}) ${span(ours)} only; the broker advertises v${broker.min}-${broker.max}`
  }
  if (req.min !== undefined && Math.max(...usable) < req.min) {
    if (broker.max < req.min) return `the broker advertises ${req.api} (key ${key}) up to v${broker.max}; ${req.why} needs v${req.min}+`
    return `${CLIENT_NAME} implements ${req.api} (key ${key}) ${span(ours)} only; ${req.why} needs v${req.min}+`
  }
  return null
}

// ---- requests sent, for failure diagnostics ------------------------------------------------------

let current = null // the scenario running now; its requests are counted
const traced = new WeakMap()
diagnosticsChannel.tracingChannel('plt:kafka:connections:api').subscribe({
  start (ctx) {
    if (!current || ctx.operation !== 'send' || traced.has(ctx)) return
    const entry = { api: `${kafka.protocolAPIsById[ctx.apiKey] ?? ctx.apiKey} v${ctx.apiVersion}`, error: null }
    traced.set(ctx, { entry, scenario: current })
    current.count(entry.api)
    current.unanswered.add(entry)
  },
  end () {},
  asyncStart (ctx) { noteAnswer(ctx) },
  asyncEnd () {},
  error (ctx) { noteAnswer(ctx) }
})
// A request that times out is not published on the channel at all (network/connection.js
// #onRequestTimeout); it stays in `unanswered`.
function noteAnswer (ctx) {
  const t = traced.get(ctx)
  if (!t) return
  t.scenario.unanswered.delete(t.entry)
  if (!ctx.error || t.entry.error) return
  t.entry.error = ctx.error
  t.scenario.failedRequests.push(t.entry)
}

// ---- one scenario's run ------------------------------------------------------------------------

let REPLICAS = 1 // set once the broker's APIs are known: -1 (broker default) with CreateTopics v4+

class Run {
  #reject
  constructor (name) {
    this.name = name
    this.full = `${CLIENT}/${name}`
    this.base = `${PREFIX}${CLIENT}-${name.replaceAll('.', '-')}`
    this.clients = []
    this.requestCounts = new Map()
    this.failedRequests = []
    this.unanswered = new Set()
    this.started = Date.now()
    this.abortError = null
    this.aborted = new Promise((resolve, reject) => { this.#reject = reject })
  }

  log (message) {
    err(`[${stamp()}] ${this.full}: ${message}`)
  }

  count (api) {
    this.requestCounts.set(api, (this.requestCounts.get(api) ?? 0) + 1)
  }

  // Ends every wait of the scenario at once (its overall bound passed, or an error arrived outside
  // any awaited promise).
  abort (error) {
    if (this.abortError) return
    this.abortError = error
    this.#reject(error)
  }

  topic (suffix) {
    return suffix ? `${this.base}-${suffix}` : this.base
  }

  get group () {
    return this.base
  }

  #options (role, extra) {
    return {
      clientId: `sluice-compat-${CLIENT}-${role}`,
      bootstrapBrokers: BOOTSTRAP,
      timeout: REQUEST_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      connectTimeout: REQUEST_TIMEOUT_MS,
      retries: 3,
      retryDelay: 250,
      strict: true,
      ...extra
    }
  }

  #track (client) {
    this.clients.push(client)
    return client
  }

  admin (extra = {}) {
    return this.#track(new Admin(this.#options('admin', extra)))
  }

  producer (extra = {}) {
    return this.#track(new Producer(this.#options('producer', extra)))
  }

  // A consumer in this scenario's group. Reading raw partitions (read()) uses one too, without ever
  // joining the group: Consumer.fetch() is a plain Fetch.
  consumer (extra = {}) {
    return this.#track(new Consumer(this.#options('consumer', {
      groupId: this.group,
      requestTimeout: GROUP_REQUEST_TIMEOUT_MS,
      sessionTimeout: SESSION_TIMEOUT_MS,
      rebalanceTimeout: REBALANCE_TIMEOUT_MS,
      heartbeatInterval: 500,
      maxWaitTime: 500,
      ...extra
    })))
  }

  // Polls `poll(note)` until it returns something other than undefined, up to the wait deadline.
  // A poll that throws is retried (the broker may not be there yet) unless the error is fatal;
  // `note` records what was last seen, for the timeout message.
  async waitFor (what, poll, { interval = 100, timeoutMs = TIMEOUT_MS } = {}) {
    const deadline = Date.now() + timeoutMs
    let seen = 'nothing'
    let lastError = null
    const note = s => { seen = s }
    for (;;) {
      if (this.abortError) throw this.abortError
      try {
        const value = await withDeadline(poll(note), Math.max(deadline - Date.now(), 1), what)
        if (value !== undefined) return value
        lastError = null
      } catch (error) {
        if (error.fatal || this.abortError) throw error
        lastError = error
      }
      if (Date.now() >= deadline) {
        throw fatal(`${what}: not seen within ${timeoutMs} ms (last seen: ${lastError ? errorText(lastError) : seen})`)
      }
      await delay(interval)
    }
  }

  // CreateTopics, then waits until Metadata shows every partition with a leader (the contract's
  // "its own topics" rule: never rely on auto-creation or on CreateTopics being synchronous).
  async createTopic (admin, name, partitions, configs = []) {
    // The client's option schema (clients/admin/options.js) omits `configs`, which its createTopics
    // does send; topic configs therefore go through an admin that skips that validation.
    const creator = configs.length ? this.admin({ strict: false }) : admin
    const options = { topics: [name], partitions, replicas: REPLICAS }
    if (configs.length) options.configs = configs
    const created = await creator.createTopics(options)
    check(created.length === 1 && created[0].name === name, () => `CreateTopics answered ${JSON.stringify(created)}`)
    const metadata = await this.waitForTopic(admin, name, partitions)
    return { created: created[0], metadata }
  }

  async waitForTopic (client, name, partitions) {
    return this.waitFor(`Metadata showing ${name} with ${partitions} partitions, each with a leader`, async note => {
      const metadata = await client.metadata({ topics: [name], forceUpdate: true })
      const t = metadata.topics.get(name)
      if (!t) return undefined
      const leaders = Array.from({ length: t.partitionsCount }, (_, p) => t.partitions[p]?.leader ?? 'none')
      note(`${t.partitionsCount} partitions, leaders [${leaders.join(',')}]`)
      if (t.partitionsCount !== partitions || !leaders.every(l => typeof l === 'number' && l >= 0)) return undefined
      return t
    }, { interval: 200 })
  }

  // Reads at least `count` records of one partition from offset `from` with plain Fetch requests
  // (READ_UNCOMMITTED, no group), polling until they are there. Returns the records (absolute offset and timestamp,
  // raw key/value/headers, the batch each came in) and the last high watermark and log start offset.
  async read (consumer, topic, partition, { from = 0n, count, maxBytes = 8 << 20, partitionMaxBytes = 4 << 20 }) {
    const metadata = await consumer.metadata({ topics: [topic], forceUpdate: true })
    const t = metadata.topics.get(topic)
    check(t?.partitions[partition]?.leader >= 0, `Metadata shows no leader for ${topic}/${partition}`)
    const records = []
    let next = from
    let last = null
    await this.waitFor(`${count} records of ${topic}/${partition} from offset ${from}`, async note => {
      const response = await consumer.fetch({
        node: t.partitions[partition].leader,
        topics: [{
          topicId: t.id,
          partitions: [{ partition, fetchOffset: next, partitionMaxBytes, currentLeaderEpoch: -1, lastFetchedEpoch: -1 }]
        }],
        maxWaitTime: 300,
        minBytes: 1,
        maxBytes,
        isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED
      })
      for (const topicResponse of response.responses) {
        check(topicResponse.topicId === t.id, `Fetch answered topic id ${topicResponse.topicId}, asked for ${t.id}`)
        for (const p of topicResponse.partitions) {
          check(p.partitionIndex === partition, `Fetch answered partition ${p.partitionIndex}, asked for ${partition}`)
          last = p
          for (const batch of p.records ?? []) {
            for (const r of batch.records) {
              const offset = batch.firstOffset + BigInt(r.offsetDelta)
              // A fetch may start with the batch that contains the fetch offset.
              if (offset < next) continue
              records.push({
                offset,
                timestamp: batch.firstTimestamp + r.timestampDelta,
                key: r.key,
                value: r.value,
                headers: r.headers,
                batch
              })
            }
            const end = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n
            if (end > next) next = end
          }
        }
      }
      note(`${records.length} records up to offset ${next}, high watermark ${last?.highWatermark}`)
      return records.length >= count ? true : undefined
    })
    // Everything read, even past `count`: a record stored twice must show up as one too many.
    return { records, highWatermark: last?.highWatermark, logStartOffset: last?.logStartOffset }
  }

  // Starts a group consumer's stream from the committed offsets (earliest when none) with manual
  // commits, and records what arrives. A stream error is fatal to every later wait on it.
  async consume (consumer, topics) {
    const stream = await consumer.consume({ topics, mode: 'committed', fallbackMode: 'earliest', autocommit: false })
    const seen = { stream, messages: [], error: null }
    stream.on('data', m => seen.messages.push(m))
    stream.on('error', e => { seen.error = e })
    seen.check = () => {
      if (seen.error) throw fatal(`the consumer stream failed: ${errorText(seen.error)}`)
    }
    return seen
  }

  // Closes what the scenario opened, each close bounded; a consumer leaves its group. Failures here
  // are reported on stderr only: the scenarios that test leaving close explicitly first.
  async closeAll () {
    await Promise.all(this.clients.map(async client => {
      if (client.closed) return
      try {
        await withDeadline(client instanceof Admin ? client.close() : client.close(true), CLOSE_BOUND_MS, `closing the ${client.constructor.name}`)
      } catch (error) {
        this.log(`closing a ${client.constructor.name} failed: ${errorText(error)}`)
      }
    }))
  }

  requestSummary () {
    return [...this.requestCounts].map(([api, n]) => `${api} x${n}`).join(', ') || 'none'
  }

  diagnostics () {
    this.log(`requests sent: ${this.requestSummary()}`)
    for (const r of this.failedRequests.slice(0, 8)) this.log(`request ${r.api} failed: ${oneLine(errorText(r.error), 400)}`)
    if (this.failedRequests.length > 8) this.log(`... ${this.failedRequests.length - 8} more failed requests`)
    if (this.unanswered.size) this.log(`requests without an answer (timed out, or in flight when the clients closed): ${[...this.unanswered].map(r => r.api).join(', ')}`)
  }
}

async function withDeadline (promise, ms, what) {
  let timer
  try {
    return await Promise.race([
      promise,
      new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}

// ListOffsets for some partitions at one timestamp: Map partition -> { offset, timestamp }.
async function listOffsets (admin, topic, partitions, timestamp) {
  const answer = await admin.listOffsets({
    topics: [{ name: topic, partitions: partitions.map(partitionIndex => ({ partitionIndex, timestamp })) }]
  })
  const result = new Map()
  for (const t of answer) {
    for (const p of t.partitions) if (t.name === topic) result.set(p.partitionIndex, p)
  }
  for (const p of partitions) check(result.has(p), `ListOffsets (timestamp ${timestamp}) did not answer for ${topic}/${p}`)
  return result
}

// The offset of the record each partition's send started at, from the Produce response.
function baseOffsets (result, topic) {
  const bases = new Map()
  for (const o of result.offsets ?? []) if (o.topic === topic) bases.set(o.partition, o.offset)
  return bases
}

// A topic configuration as DescribeConfigs reports it: Map name -> { value, configSource, ... }.
async function describeTopicConfigs (admin, topic, keys = null) {
  const answer = await admin.describeConfigs({
    resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: keys }]
  })
  const resource = answer.find(r => r.resourceName === topic)
  check(resource, () => `DescribeConfigs did not answer for ${topic}: ${JSON.stringify(answer)}`)
  return new Map(resource.configs.map(c => [c.name, c]))
}
const showConfig = c => (c ? `${JSON.stringify(c.value)} (source ${c.configSource})` : 'absent')

// ---- scenarios ---------------------------------------------------------------------------------
// Each names the Kafka behaviour it checks and where that behaviour is defined.

const CONSUME = [
  { api: 'Fetch', min: 13, why: `${CLIENT_NAME}, which reads by topic id (KIP-516),` }
]
const GROUP = [
  ...CONSUME,
  { api: 'ListOffsets' },
  { api: 'FindCoordinator' },
  { api: 'JoinGroup' },
  { api: 'SyncGroup' },
  { api: 'Heartbeat' },
  { api: 'LeaveGroup' },
  { api: 'OffsetCommit' },
  { api: 'OffsetFetch' }
]

// Keys, values and headers come back byte for byte and in order. The record format (protocol guide,
// "Record Batch"/"Record"; clients/src/main/java/org/apache/kafka/common/record/DefaultRecord.java)
// carries headers (KIP-82) as an ordered list in which a name may repeat; a partition is an
// ordered log, and the Produce response's base_offset is the offset of the batch's first record.
async function produceKeysHeaders (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 2)
  const producer = s.producer()
  const want = [[], []]
  for (let send = 0; send < 3; send++) {
    const messages = []
    for (let p = 0; p < 2; p++) {
      for (let j = 0; j < 4; j++) {
        const i = want[p].length
        const headers = [['trace', `p${p}-${i}`], ['kind', i % 2 ? 'odd' : 'even']]
        if (i % 3 === 0) headers.push(['trace', `again-${i}`]) // a repeated name, after another header
        if (i === 5) headers.push(['bin', '\u0000\u00ff\n\r'])
        const rec = {
          key: Buffer.from(`key-${p}-${i}`),
          value: Buffer.from(`value ${p}/${i} ${'v'.repeat(i * 7)}`),
          headers: headers.map(([k, v]) => [k, Buffer.from(v, 'latin1')])
        }
        want[p].push(rec)
        messages.push(toMessage(topic, p, rec))
      }
    }
    const result = await producer.send({ messages, acks: -1 })
    const bases = baseOffsets(result, topic)
    for (let p = 0; p < 2; p++) {
      check(bases.get(p) === BigInt(want[p].length - 4), `send ${send}: Produce answered base offset ${bases.get(p)} for partition ${p}, expected ${want[p].length - 4}`)
    }
  }
  const reader = s.consumer()
  for (let p = 0; p < 2; p++) {
    const read = await s.read(reader, topic, p, { count: want[p].length })
    expectRecords(read.records, want[p], `partition ${p}`)
    check(read.highWatermark === BigInt(want[p].length), `partition ${p}: high watermark ${read.highWatermark}, expected ${want[p].length}`)
  }
}

// Null and empty are different: a key or value of length -1 is null, of length 0 is empty
// (DefaultRecord.java; protocol guide "Record"), and a null value is a tombstone, the delete marker
// of log compaction (Kafka documentation, "Log Compaction"). A header value may be null too.
async function produceNullEmpty (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1)
  const E = Buffer.alloc(0)
  const want = [
    { key: null, value: Buffer.from('null key') },
    { key: E, value: Buffer.from('empty key') },
    { key: Buffer.from('tombstone'), value: null },
    { key: Buffer.from('empty value'), value: E },
    { key: null, value: null },
    { key: E, value: E },
    { key: Buffer.from('headers'), value: Buffer.from('v'), headers: [['null-value', null], ['empty-value', E], ['', Buffer.from('empty name')]] }
  ]
  const producer = s.producer()
  // Two sends: the special cases both open a batch and sit inside one.
  await producer.send({ messages: want.slice(0, 3).map(r => toMessage(topic, 0, r)), acks: -1 })
  await producer.send({ messages: want.slice(3).map(r => toMessage(topic, 0, r)), acks: -1 })
  const read = await s.read(s.consumer(), topic, 0, { count: want.length })
  expectRecords(read.records, want, 'partition 0')
}

// A record of about 900 KiB goes through: it is below Kafka's default message.max.bytes, 1048588
// (server-common .../config/ServerLogConfigs.java, MAX_MESSAGE_BYTES_DEFAULT). And a Fetch whose
// limits are smaller than that batch still returns it whole, so a consumer can make progress
// (KIP-74; protocol guide, Fetch max_bytes: "if the first record batch ... is larger than this
// value, the record batch will still be returned").
async function produceLargeValue (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1)
  const want = [
    { key: Buffer.from('large'), value: randomBytes(900 * 1024), headers: [['size', Buffer.from('921600')]] },
    { key: Buffer.from('after'), value: Buffer.from('the record after the large one') }
  ]
  const producer = s.producer()
  for (const rec of want) await producer.send({ messages: [toMessage(topic, 0, rec)], acks: -1 })
  const reader = s.consumer()
  const read = await s.read(reader, topic, 0, { count: 2 })
  expectRecords(read.records, want, 'partition 0')
  const small = await s.read(reader, topic, 0, { count: 1, maxBytes: 64 << 10, partitionMaxBytes: 64 << 10 })
  check(sameBytes(small.records[0].value, want[0].value), 'a Fetch with 64 KiB limits did not return the 900 KiB record whole (KIP-74)')
}

// A batch compressed with each codec round-trips, and with the topic's compression.type=producer
// the broker keeps the producer's codec (attributes bits 0-2: 1 gzip, 2 snappy, 3 lz4, 4 zstd;
// protocol guide "Record Batch"; TopicConfig.java COMPRESSION_TYPE_DOC; zstd is KIP-110 and needs
// Produce v7+).
function compressionScenario (codec) {
  return async function compression (s) {
    const admin = s.admin()
    const topic = s.topic()
    await s.createTopic(admin, topic, 1, [{ name: 'compression.type', value: 'producer' }])
    const producer = s.producer()
    const want = []
    for (const n of [50, 30]) {
      const messages = []
      for (let j = 0; j < n; j++) {
        const i = want.length
        const rec = {
          key: Buffer.from(`${codec}-${i}`),
          value: Buffer.from(`${codec} record ${i} ${'compressible text '.repeat(10 + (i % 5))}`),
          headers: [['codec', Buffer.from(codec)]]
        }
        want.push(rec)
        messages.push(toMessage(topic, 0, rec))
      }
      await producer.send({ messages, acks: -1, compression: codec })
    }
    const read = await s.read(s.consumer(), topic, 0, { count: want.length })
    expectRecords(read.records, want, 'partition 0')
    const bitmask = compressionsAlgorithms[codec].bitmask
    for (const r of read.records) {
      check((r.batch.attributes & 7) === bitmask, `the batch at offset ${r.batch.firstOffset} has compression bits ${r.batch.attributes & 7}, expected ${bitmask} (${codec}) as produced`)
    }
  }
}

// ListOffsets with timestamp -2 (EARLIEST) answers the log start offset and -1 (LATEST) the high
// watermark, the offset the next record will get (protocol guide, ListOffsets;
// clients/src/main/java/org/apache/kafka/common/requests/ListOffsetsRequest.java). With acks=all
// the high watermark covers a record once its Produce is answered.
async function listOffsetsEarliestLatest (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 2)
  const expect = async (when, ends) => {
    const earliest = await listOffsets(admin, topic, [0, 1], EARLIEST)
    const latest = await listOffsets(admin, topic, [0, 1], LATEST)
    for (let p = 0; p < 2; p++) {
      check(earliest.get(p).offset === 0n, `${when}: earliest offset of partition ${p} is ${earliest.get(p).offset}, expected 0`)
      check(latest.get(p).offset === ends[p], `${when}: latest offset of partition ${p} is ${latest.get(p).offset}, expected ${ends[p]}`)
    }
  }
  await expect('empty topic', [0n, 0n])
  const producer = s.producer()
  const rec = i => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) })
  await producer.send({ messages: [0, 1, 2].map(i => toMessage(topic, 0, rec(i))), acks: -1 })
  await producer.send({ messages: [3, 4].map(i => toMessage(topic, 0, rec(i))).concat([0, 1, 2].map(i => toMessage(topic, 1, rec(i)))), acks: -1 })
  await expect('after 5 records to partition 0 and 3 to partition 1', [5n, 3n])
}

// ListOffsets by timestamp answers the first offset whose timestamp is >= the target, with that
// record's timestamp, and offset -1 when no record is that late (KIP-79; protocol guide, ListOffsets
// v1+; UnifiedLog.fetchOffsetByTimestamp). The records carry explicit CreateTime timestamps.
async function listOffsetsByTimestamp (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1, [{ name: 'message.timestamp.type', value: 'CreateTime' }])
  // An hour back, whole seconds: inside every default retention and timestamp-skew limit.
  const t0 = BigInt(Math.floor((Date.now() - 3_600_000) / 1000) * 1000)
  const want = Array.from({ length: 10 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`at t0+${i}s`), timestamp: t0 + BigInt(i) * 1000n }))
  const producer = s.producer()
  // Two batches, so that lookups land both inside a batch and on a batch boundary.
  await producer.send({ messages: want.slice(0, 5).map(r => toMessage(topic, 0, r)), acks: -1 })
  await producer.send({ messages: want.slice(5).map(r => toMessage(topic, 0, r)), acks: -1 })
  const read = await s.read(s.consumer(), topic, 0, { count: want.length })
  expectRecords(read.records, want, 'partition 0 (timestamps as produced)')
  const cases = [
    [t0 - 60_000n, 0n, t0, 'before every record'],
    [t0, 0n, t0, 'the first record\'s timestamp'],
    [t0 + 3500n, 4n, t0 + 4000n, 'between records 3 and 4'],
    [t0 + 5000n, 5n, t0 + 5000n, 'the first record of the second batch'],
    [t0 + 9000n, 9n, t0 + 9000n, 'the last record\'s timestamp'],
    [t0 + 9001n, -1n, -1n, 'after every record']
  ]
  for (const [target, offset, timestamp, what] of cases) {
    const answer = (await listOffsets(admin, topic, [0], target)).get(0)
    check(answer.offset === offset, `timestamp t0${target >= t0 ? '+' : ''}${target - t0} ms (${what}): offset ${answer.offset}, expected ${offset}`)
    // A broker answers timestamp -1 with offset -1; otherwise the found record's timestamp.
    check(offset === -1n || answer.timestamp === timestamp, `timestamp t0+${target - t0} ms (${what}): answered timestamp ${answer.timestamp}, expected ${timestamp}`)
  }
}

// ListOffsets with timestamp -3 (MAX_TIMESTAMP, v7+) answers the offset and timestamp of the record
// with the largest timestamp, wherever it sits in the log (KIP-734; ListOffsetsRequest.MAX_TIMESTAMP).
// That record is a batch of its own: Kafka releases have disagreed on the offset when it shares a
// batch with later records (the batch's last offset or its own; KAFKA-16310, KAFKA-16342).
async function listOffsetsMaxTimestamp (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1, [{ name: 'message.timestamp.type', value: 'CreateTime' }])
  const t0 = BigInt(Math.floor((Date.now() - 3_600_000) / 1000) * 1000)
  const rec = (i, ms) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`at t0+${ms}ms`), timestamp: t0 + BigInt(ms) })
  const batches = [[rec(0, 0), rec(1, 1000)], [rec(2, 5000)], [rec(3, 2000), rec(4, 3000)]]
  const producer = s.producer()
  for (const batch of batches) await producer.send({ messages: batch.map(r => toMessage(topic, 0, r)), acks: -1 })
  const answer = (await listOffsets(admin, topic, [0], -3n)).get(0)
  check(answer.offset === 2n && answer.timestamp === t0 + 5000n,
    `MAX_TIMESTAMP answered offset ${answer.offset} timestamp t0+${answer.timestamp - t0} ms, expected offset 2 at t0+5000 ms`)
}

// A consumer group resumes where it committed: OffsetCommit stores the next offset to read, OffsetFetch
// returns it to anyone asking for the group, and a new member of the group starts there, not at the
// beginning (protocol guide, OffsetCommit/OffsetFetch; KafkaConsumer javadoc, "Offsets and Consumer
// Position").
async function groupsCommitResume (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 2)
  const producer = s.producer()
  const messages = []
  for (let p = 0; p < 2; p++) for (let i = 0; i < 10; i++) messages.push(toMessage(topic, p, { key: Buffer.from(`k${i}`), value: Buffer.from(`p${p} #${i}`) }))
  await producer.send({ messages, acks: -1 })

  const first = s.consumer()
  const a = await s.consume(first, [topic])
  await s.waitFor('the first consumer to receive all 20 records', async note => {
    a.check()
    note(`${a.messages.length} records`)
    return a.messages.length >= 20 ? true : undefined
  })
  check(a.messages.length === 20, `the first consumer received ${a.messages.length} records, expected 20`)
  for (let p = 0; p < 2; p++) {
    const got = a.messages.filter(m => m.partition === p)
    check(got.every((m, i) => m.offset === BigInt(i) && m.value?.toString() === `p${p} #${i}`),
      () => `partition ${p}: received ${got.map(m => `${m.offset}:${m.value}`).join(' ')}`)
    await got[5].commit() // commits offset 6: the next record to read
  }
  const committed = await first.listCommittedOffsets({ topics: [{ topic, partitions: [0, 1] }] })
  check(committed.get(topic)?.[0] === 6n && committed.get(topic)?.[1] === 6n, `OffsetFetch by the member answered ${committed.get(topic)}, expected 6,6`)
  await a.stream.close()
  await first.close()

  const fetched = await admin.listConsumerGroupOffsets({ groups: [s.group] })
  const offsets = fetched.find(g => g.groupId === s.group)?.topics.find(t => t.name === topic)?.partitions ?? []
  for (let p = 0; p < 2; p++) {
    const c = offsets.find(x => x.partitionIndex === p)?.committedOffset
    check(c === 6n, `OffsetFetch by the admin: partition ${p} committed ${c}, expected 6`)
  }

  const second = s.consumer()
  const b = await s.consume(second, [topic])
  await s.waitFor('the second consumer to receive the 8 records after the committed offsets', async note => {
    b.check()
    for (const m of b.messages) check(m.offset >= 6n, `the second consumer received ${topic}/${m.partition} offset ${m.offset}, before the committed offset 6`)
    note(`${b.messages.length} records`)
    return b.messages.length >= 8 ? true : undefined
  })
  for (let p = 0; p < 2; p++) {
    const got = b.messages.filter(m => m.partition === p).map(m => m.offset)
    check(got.join() === '6,7,8,9', `the second consumer read partition ${p} offsets ${got.join()}, expected 6,7,8,9`)
  }
}

// A group rebalances when a member joins and when one leaves: the coordinator answers the other
// members' Heartbeat with REBALANCE_IN_PROGRESS, they rejoin (JoinGroup/SyncGroup) and the leader's
// assignment splits the partitions between the members; after a LeaveGroup the remaining member
// gets everything (protocol guide, "The Kafka protocol: group membership API"; Kafka
// group-coordinator/src/main/java/org/apache/kafka/coordinator/group/GroupMetadataManager.java,
// classic group handling).
async function groupsRebalance (s) {
  const admin = s.admin()
  const topic = s.topic()
  const N = 4
  await s.createTopic(admin, topic, N)
  const owned = c => (c.assignments ?? []).filter(x => x.topic === topic).flatMap(x => x.partitions).sort((x, y) => x - y)
  const all = Array.from({ length: N }, (_, p) => p).join()

  const first = s.consumer({ clientId: `sluice-compat-${CLIENT}-consumer-a` })
  const a = await s.consume(first, [topic])
  await s.waitFor('the only member to own every partition', async note => {
    a.check()
    note(`owns [${owned(first)}]`)
    return owned(first).join() === all ? true : undefined
  })

  const second = s.consumer({ clientId: `sluice-compat-${CLIENT}-consumer-b` })
  const b = await s.consume(second, [topic])
  const split = await s.waitFor('two members to split the partitions in one generation', async note => {
    a.check()
    b.check()
    const [pa, pb] = [owned(first), owned(second)]
    note(`first owns [${pa}] (generation ${first.generationId}), second owns [${pb}] (generation ${second.generationId})`)
    const union = [...pa, ...pb].sort((x, y) => x - y).join()
    return pa.length && pb.length && union === all && first.generationId === second.generationId ? first.generationId : undefined
  })
  s.log(`generation ${split}: first owns [${owned(first)}], second owns [${owned(second)}]`)

  // Records produced now reach the member that owns their partition.
  const producer = s.producer()
  const round = async (label, consumers) => {
    await producer.send({ messages: Array.from({ length: N }, (_, p) => toMessage(topic, p, { key: null, value: Buffer.from(`${label} p${p}`) })), acks: -1 })
    await s.waitFor(`the ${label} records of every partition to reach their owner`, async note => {
      const missing = []
      for (let p = 0; p < N; p++) {
        const owners = consumers.filter(([c]) => owned(c).includes(p))
        const got = owners.some(([, seen]) => seen.messages.some(m => m.partition === p && m.value?.toString() === `${label} p${p}`))
        if (!got) missing.push(p)
      }
      for (const [, seen] of consumers) seen.check()
      note(`missing partitions [${missing}]`)
      return missing.length ? undefined : true
    })
  }
  await round('split', [[first, a], [second, b]])

  await b.stream.close()
  await second.close() // LeaveGroup
  await s.waitFor('the remaining member to own every partition again', async note => {
    a.check()
    note(`owns [${owned(first)}] (generation ${first.generationId})`)
    return owned(first).join() === all && first.generationId > split ? true : undefined
  })
  await round('after-leave', [[first, a]])
}

// CreateTopics creates a topic with the partitions asked for and answers its topic id (v7+, KIP-516),
// which Metadata reports too; creating it again fails with TOPIC_ALREADY_EXISTS; DeleteTopics
// removes it from Metadata, and deleting it again fails with UNKNOWN_TOPIC_OR_PARTITION (KIP-4;
// protocol guide, CreateTopics/DeleteTopics).
async function adminCreateDeleteTopics (s) {
  const admin = s.admin()
  const topic = s.topic()
  const { created, metadata } = await s.createTopic(admin, topic, 3)
  check(created.partitions === 3, `CreateTopics answered ${created.partitions} partitions, expected 3`)
  const nil = '00000000-0000-0000-0000-000000000000'
  check(metadata.id && metadata.id !== nil, `Metadata gives ${topic} topic id ${metadata.id}`)
  check(created.id === metadata.id, `CreateTopics answered topic id ${created.id}, Metadata ${metadata.id}`)

  let again = null
  try {
    await admin.createTopics({ topics: [topic], partitions: 3, replicas: REPLICAS })
  } catch (error) {
    again = error
  }
  check(again, 'creating the topic a second time succeeded')
  check(hasCode(again, ERR.TOPIC_ALREADY_EXISTS), () => `creating the topic a second time failed with ${errorText(again)}, expected TOPIC_ALREADY_EXISTS (36)`)

  await admin.deleteTopics({ topics: [topic] })
  await s.waitFor(`Metadata to stop listing ${topic}`, async note => {
    const topics = await admin.listTopics()
    note(topics.includes(topic) ? 'still listed' : 'gone')
    return topics.includes(topic) ? undefined : true
  }, { interval: 200 })

  let twice = null
  try {
    await admin.deleteTopics({ topics: [topic] })
  } catch (error) {
    twice = error
  }
  check(twice, 'deleting the topic a second time succeeded')
  check(hasCode(twice, 3), () => `deleting the topic a second time failed with ${errorText(twice)}, expected UNKNOWN_TOPIC_OR_PARTITION (3)`)
}

// CreatePartitions grows a topic to the asked count, the new partitions get leaders and take
// records; asking for fewer partitions than the topic has fails with INVALID_PARTITIONS (KIP-195;
// protocol guide, CreatePartitions).
async function adminCreatePartitions (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1)
  await admin.createPartitions({ topics: [{ name: topic, count: 3 }] })
  await s.waitForTopic(admin, topic, 3)
  const producer = s.producer()
  const want = [{ key: Buffer.from('new'), value: Buffer.from('in partition 2') }]
  const result = await producer.send({ messages: [toMessage(topic, 2, want[0])], acks: -1 })
  check(baseOffsets(result, topic).get(2) === 0n, `Produce to the new partition 2 answered base offset ${baseOffsets(result, topic).get(2)}`)
  const read = await s.read(s.consumer(), topic, 2, { count: 1 })
  expectRecords(read.records, want, 'new partition 2')
  const latest = await listOffsets(admin, topic, [0, 1, 2], LATEST)
  check([0n, 0n, 1n].every((o, p) => latest.get(p).offset === o), `latest offsets ${[0, 1, 2].map(p => latest.get(p).offset)}, expected 0,0,1`)

  let shrink = null
  try {
    await admin.createPartitions({ topics: [{ name: topic, count: 2 }] })
  } catch (error) {
    shrink = error
  }
  check(shrink, 'CreatePartitions from 3 down to 2 succeeded')
  check(hasCode(shrink, ERR.INVALID_PARTITIONS), () => `CreatePartitions from 3 down to 2 failed with ${errorText(shrink)}, expected INVALID_PARTITIONS (37)`)
}

// DescribeConfigs lists a topic's configuration: a value given at creation is reported as a topic
// override (config_source DYNAMIC_TOPIC_CONFIG = 1, KIP-226), defaults such as cleanup.policy are
// present, and asking for named keys answers exactly those (KIP-133; protocol guide,
// DescribeConfigs; names from clients/src/main/java/org/apache/kafka/common/config/TopicConfig.java).
async function adminDescribeConfigs (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1, [{ name: 'retention.ms', value: '3600000' }])
  const configs = await s.waitFor('DescribeConfigs to report retention.ms=3600000 for the new topic', async note => {
    const c = await describeTopicConfigs(admin, topic)
    note(`retention.ms ${showConfig(c.get('retention.ms'))}, ${c.size} configs`)
    return c.get('retention.ms')?.value === '3600000' ? c : undefined
  }, { interval: 200 })
  check(configs.get('retention.ms').configSource === ConfigSources.TOPIC_CONFIG,
    `retention.ms set at creation is reported with source ${configs.get('retention.ms').configSource}, expected ${ConfigSources.TOPIC_CONFIG} (DYNAMIC_TOPIC_CONFIG)`)
  const policy = configs.get('cleanup.policy')
  check(policy && /^(delete|compact|delete,compact|compact,delete)$/.test(policy.value ?? ''), `cleanup.policy is ${showConfig(policy)}`)
  const named = await describeTopicConfigs(admin, topic, ['cleanup.policy', 'retention.ms'])
  check([...named.keys()].sort().join() === 'cleanup.policy,retention.ms', `asking for cleanup.policy and retention.ms answered [${[...named.keys()]}]`)
}

// AlterConfigs sets a topic's configuration to exactly the given entries: the new value is
// reported, and overrides not named in the request go back to their defaults (KIP-133; the
// replace-all behaviour is why KIP-339 added IncrementalAlterConfigs).
async function adminAlterConfigs (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1, [{ name: 'retention.bytes', value: '1048576' }])
  await admin.alterConfigs({
    resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configs: [{ name: 'retention.ms', value: '7200000' }] }]
  })
  await s.waitFor('DescribeConfigs to report retention.ms=7200000 as a topic override and retention.bytes no longer overridden', async note => {
    const c = await describeTopicConfigs(admin, topic)
    const [ms, bytes] = [c.get('retention.ms'), c.get('retention.bytes')]
    note(`retention.ms ${showConfig(ms)}, retention.bytes ${showConfig(bytes)}`)
    return ms?.value === '7200000' && ms.configSource === ConfigSources.TOPIC_CONFIG &&
      bytes && bytes.configSource !== ConfigSources.TOPIC_CONFIG
      ? true
      : undefined
  }, { interval: 200 })
}

// IncrementalAlterConfigs changes only the entries named: SET adds an override and keeps the others,
// DELETE removes one override (KIP-339; protocol guide, IncrementalAlterConfigs).
async function adminIncrementalAlterConfigs (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1, [{ name: 'retention.ms', value: '3600000' }])
  const alter = configs => admin.incrementalAlterConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configs }] })
  await alter([{ name: 'retention.bytes', configOperation: IncrementalAlterConfigOperationTypes.SET, value: '1048576' }])
  await s.waitFor('retention.bytes=1048576 set next to retention.ms=3600000', async note => {
    const c = await describeTopicConfigs(admin, topic)
    const [ms, bytes] = [c.get('retention.ms'), c.get('retention.bytes')]
    note(`retention.ms ${showConfig(ms)}, retention.bytes ${showConfig(bytes)}`)
    return bytes?.value === '1048576' && bytes.configSource === ConfigSources.TOPIC_CONFIG && ms?.value === '3600000' ? true : undefined
  }, { interval: 200 })
  await alter([{ name: 'retention.bytes', configOperation: IncrementalAlterConfigOperationTypes.DELETE }])
  await s.waitFor('retention.bytes no longer overridden, retention.ms=3600000 kept', async note => {
    const c = await describeTopicConfigs(admin, topic)
    const [ms, bytes] = [c.get('retention.ms'), c.get('retention.bytes')]
    note(`retention.ms ${showConfig(ms)}, retention.bytes ${showConfig(bytes)}`)
    return bytes && bytes.configSource !== ConfigSources.TOPIC_CONFIG && ms?.value === '3600000' ? true : undefined
  }, { interval: 200 })
}

// Group administration: ListGroups lists a group with members, DescribeGroups shows its state,
// protocol and members with their assignment; DeleteGroups refuses a group with members
// (NON_EMPTY_GROUP) and deletes an empty one together with its committed offsets, after which it is
// neither listed nor described as alive (KIP-229; protocol guide, ListGroups/DescribeGroups/DeleteGroups).
async function adminGroups (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1)
  const producer = s.producer()
  await producer.send({ messages: [toMessage(topic, 0, { key: null, value: Buffer.from('one') })], acks: -1 })
  const consumer = s.consumer({ clientId: `sluice-compat-${CLIENT}-group-member` })
  const seen = await s.consume(consumer, [topic])
  await s.waitFor('the member to receive the record', async () => {
    seen.check()
    return seen.messages.length ? true : undefined
  })
  await seen.messages[0].commit()

  await s.waitFor(`ListGroups to list ${s.group} as a Stable consumer group`, async note => {
    const groups = await admin.listGroups()
    const g = groups.get(s.group)
    note(g ? `state ${g.state}, protocol type ${g.protocolType}` : `not among ${groups.size} groups`)
    return g?.state === 'STABLE' && g.protocolType === 'consumer' ? true : undefined
  }, { interval: 200 })
  const described = (await admin.describeGroups({ groups: [s.group] })).get(s.group)
  check(described, `DescribeGroups did not answer for ${s.group}`)
  check(described.state === 'STABLE' && described.protocolType === 'consumer' && described.protocol === 'roundrobin',
    `DescribeGroups: state ${described.state}, protocol type ${described.protocolType}, protocol ${described.protocol}; expected STABLE, consumer, roundrobin`)
  check(described.members.size === 1, `DescribeGroups lists ${described.members.size} members, expected 1`)
  const member = [...described.members.values()][0]
  check(member.id === consumer.memberId, `DescribeGroups member id ${member.id}, the consumer's is ${consumer.memberId}`)
  check(member.clientId === `sluice-compat-${CLIENT}-group-member`, `DescribeGroups member client id ${member.clientId}`)
  check(member.assignments?.get(topic)?.partitions?.join() === '0', () => `DescribeGroups member assignment ${JSON.stringify([...(member.assignments ?? new Map())])}, expected ${topic}: [0]`)

  let busy = null
  try {
    await admin.deleteGroups({ groups: [s.group] })
  } catch (error) {
    busy = error
  }
  check(busy, 'DeleteGroups deleted a group that has a member')
  check(hasCode(busy, ERR.NON_EMPTY_GROUP), () => `DeleteGroups of a group with a member failed with ${errorText(busy)}, expected NON_EMPTY_GROUP (68)`)

  await seen.stream.close()
  await consumer.close() // LeaveGroup
  await s.waitFor('DescribeGroups to show the group Empty after its member left', async note => {
    const g = (await admin.describeGroups({ groups: [s.group] })).get(s.group)
    note(`state ${g?.state}, ${g?.members.size} members`)
    return g?.state === 'EMPTY' && g.members.size === 0 ? true : undefined
  }, { interval: 200 })
  await admin.deleteGroups({ groups: [s.group] })

  // v5 answers an unknown group as Dead; later versions with GROUP_ID_NOT_FOUND.
  let gone
  try {
    gone = (await admin.describeGroups({ groups: [s.group] })).get(s.group)?.state
  } catch (error) {
    check(hasCode(error, ERR.GROUP_ID_NOT_FOUND), () => `DescribeGroups after DeleteGroups failed with ${errorText(error)}`)
    gone = 'GROUP_ID_NOT_FOUND'
  }
  check(gone === 'DEAD' || gone === 'GROUP_ID_NOT_FOUND', `DescribeGroups after DeleteGroups: state ${gone}, expected Dead`)
  const listed = await admin.listGroups()
  check(!listed.has(s.group), `ListGroups still lists ${s.group} after DeleteGroups`)
  const offsets = await admin.listConsumerGroupOffsets({ groups: [{ groupId: s.group, topics: [{ name: topic, partitionIndexes: [0] }] }] })
  const left = offsets.flatMap(g => g.topics).flatMap(t => t.partitions).filter(p => p.committedOffset >= 0n)
  check(left.length === 0, () => `OffsetFetch after DeleteGroups still answers committed offsets ${left.map(p => `${p.partitionIndex}:${p.committedOffset}`)}`)
}

// DeleteRecords moves a partition's log start offset (the low watermark) up to the given offset, or
// to the high watermark for offset -1: ListOffsets EARLIEST answers it and reading starts there
// (KIP-107; protocol guide, DeleteRecords).
async function adminDeleteRecords (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1)
  const want = Array.from({ length: 10 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`record ${i}`) }))
  const producer = s.producer()
  await producer.send({ messages: want.slice(0, 6).map(r => toMessage(topic, 0, r)), acks: -1 })
  await producer.send({ messages: want.slice(6).map(r => toMessage(topic, 0, r)), acks: -1 })
  const lowWatermark = async offset => {
    const answer = await admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition: 0, offset }] }] })
    return answer.find(t => t.name === topic)?.partitions.find(p => p.partition === 0)?.lowWatermark
  }
  const low = await lowWatermark(4n)
  check(low === 4n, `DeleteRecords up to offset 4 answered low watermark ${low}`)
  const earliest = (await listOffsets(admin, topic, [0], EARLIEST)).get(0).offset
  check(earliest === 4n, `after DeleteRecords up to 4, the earliest offset is ${earliest}`)
  const read = await s.read(s.consumer(), topic, 0, { from: 4n, count: 6 })
  expectRecords(read.records, want.slice(4), 'partition 0 from offset 4', 4n)
  check(read.logStartOffset === 4n, `Fetch reports log start offset ${read.logStartOffset}, expected 4`)
  const all = await lowWatermark(-1n)
  check(all === 10n, `DeleteRecords with offset -1 (the high watermark) answered low watermark ${all}, expected 10`)
  const end = await listOffsets(admin, topic, [0], EARLIEST)
  check(end.get(0).offset === 10n, `after DeleteRecords to the high watermark, the earliest offset is ${end.get(0).offset}, expected 10`)
}

// An idempotent producer's records are stored exactly once and in order, each batch keeping the
// producer id, epoch and sequence numbers the producer gave it (KIP-98; protocol guide, "Record
// Batch"; InitProducerId).
async function idempotentProduce (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 2)
  const producer = s.producer({ idempotent: true })
  const want = [[], []]
  for (let send = 0; send < 4; send++) {
    const messages = []
    for (let p = 0; p < 2; p++) {
      for (let j = 0; j < 5; j++) {
        const rec = { key: Buffer.from(`k${want[p].length}`), value: Buffer.from(`p${p} send ${send} #${want[p].length}`) }
        want[p].push(rec)
        messages.push(toMessage(topic, p, rec))
      }
    }
    await producer.send({ messages })
  }
  check(producer.producerId >= 0n, `InitProducerId gave producer id ${producer.producerId}`)
  const reader = s.consumer()
  for (let p = 0; p < 2; p++) {
    const read = await s.read(reader, topic, p, { count: want[p].length })
    expectRecords(read.records, want[p], `partition ${p}`)
    check(read.highWatermark === BigInt(want[p].length), `partition ${p}: high watermark ${read.highWatermark}, expected ${want[p].length} (a duplicate was stored)`)
    for (const r of read.records) {
      const b = r.batch
      check(b.producerId === producer.producerId && b.producerEpoch === producer.producerEpoch,
        `partition ${p} batch at ${b.firstOffset}: producer ${b.producerId}/${b.producerEpoch}, expected ${producer.producerId}/${producer.producerEpoch}`)
      check(BigInt(b.firstSequence) === b.firstOffset, `partition ${p} batch at ${b.firstOffset}: first sequence ${b.firstSequence}, expected ${b.firstOffset}`)
    }
  }
}

// A retried batch (same producer id, epoch and sequence numbers) is not stored a second time: the
// broker recognises it among the producer's last five batches and answers it with the original
// offset (or, from older brokers, DUPLICATE_SEQUENCE_NUMBER), and the producer's next batch follows
// on (KIP-98; Kafka storage/src/main/java/org/apache/kafka/storage/internals/log/ProducerStateEntry.java,
// findDuplicateBatch).
async function idempotentDuplicateBatch (s) {
  const admin = s.admin()
  const topic = s.topic()
  await s.createTopic(admin, topic, 1)
  const producer = s.producer({ idempotent: true })
  const batch = n => Array.from({ length: 5 }, (_, i) => ({ key: Buffer.from(`k${n}-${i}`), value: Buffer.from(`batch ${n} record ${i}`) }))
  const first = batch(0)
  await producer.send({ messages: first.map(r => toMessage(topic, 0, r)) })
  const { producerId, producerEpoch } = producer
  check(producerId >= 0n, `InitProducerId gave producer id ${producerId}`)

  // The retry: the same five records with the same producer id, epoch and first sequence (0), sent
  // again on another connection as a producer does after losing the first answer.
  const retrier = s.producer({ retries: 0 })
  try {
    const result = await retrier.send({ messages: first.map(r => toMessage(topic, 0, r)), acks: -1, producerId, producerEpoch })
    const base = baseOffsets(result, topic).get(0)
    check(base === 0n, `the duplicate batch was answered with base offset ${base}; the original is at 0`)
    s.log('the duplicate batch was answered with the original base offset 0')
  } catch (error) {
    if (error.fatal) throw error
    check(hasCode(error, ERR.DUPLICATE_SEQUENCE_NUMBER), () => `the duplicate batch failed with ${errorText(error)}`)
    s.log('the duplicate batch was answered with DUPLICATE_SEQUENCE_NUMBER')
  }
  const second = batch(1)
  const result = await producer.send({ messages: second.map(r => toMessage(topic, 0, r)) })
  check(baseOffsets(result, topic).get(0) === 5n, `the batch after the duplicate got base offset ${baseOffsets(result, topic).get(0)}, expected 5`)
  const read = await s.read(s.consumer(), topic, 0, { count: 10 })
  expectRecords(read.records, [...first, ...second], 'partition 0')
  check(read.highWatermark === 10n, `high watermark ${read.highWatermark}, expected 10: the duplicate batch was stored`)
}

const BASE = [
  // Every client of this library opens with ApiVersions v3 and has no fallback (clients/base/base.js [kListApis]).
  { api: 'ApiVersions', only: [3] },
  { api: 'Metadata' },
  { api: 'CreateTopics' }
]
const PRODUCE = [{ api: 'Produce' }, ...CONSUME]

const zstdMissing = () => (compressionsAlgorithms.zstd?.available
  ? null
  : `${CLIENT_NAME} on Node ${process.versions.node} has no zstd: node:zlib lacks zstdCompressSync (Node >= 22.15)`)

const SCENARIOS = [
  { name: 'produce.keys_headers', needs: PRODUCE, run: produceKeysHeaders },
  { name: 'produce.null_empty', needs: PRODUCE, run: produceNullEmpty },
  { name: 'produce.large_value', needs: PRODUCE, run: produceLargeValue },
  ...['gzip', 'snappy', 'lz4', 'zstd'].map(codec => ({
    name: `compression.${codec}`,
    needs: codec === 'zstd' ? [{ api: 'Produce', min: 7, why: 'zstd (KIP-110)' }, ...CONSUME] : PRODUCE,
    clientLacks: () => (compressionsAlgorithms[codec]
      ? (codec === 'zstd' ? zstdMissing() : null)
      : `${CLIENT_NAME} has no ${codec} codec`),
    run: compressionScenario(codec)
  })),
  { name: 'list_offsets.earliest_latest', needs: [{ api: 'Produce' }, { api: 'ListOffsets' }], run: listOffsetsEarliestLatest },
  { name: 'list_offsets.by_timestamp', needs: [...PRODUCE, { api: 'ListOffsets', min: 1, why: 'a lookup by timestamp (KIP-79)' }], run: listOffsetsByTimestamp },
  { name: 'list_offsets.max_timestamp', needs: [{ api: 'Produce' }, { api: 'ListOffsets', min: 7, why: 'MAX_TIMESTAMP (KIP-734)' }], run: listOffsetsMaxTimestamp },
  { name: 'groups.commit_resume', needs: [{ api: 'Produce' }, ...GROUP], run: groupsCommitResume },
  { name: 'groups.rebalance', needs: [{ api: 'Produce' }, ...GROUP], run: groupsRebalance },
  { name: 'admin.create_delete_topics', needs: [{ api: 'DeleteTopics' }], run: adminCreateDeleteTopics },
  { name: 'admin.create_partitions', needs: [{ api: 'CreatePartitions' }, ...PRODUCE, { api: 'ListOffsets' }], run: adminCreatePartitions },
  { name: 'admin.describe_configs', needs: [{ api: 'DescribeConfigs' }], run: adminDescribeConfigs },
  { name: 'admin.alter_configs', needs: [{ api: 'AlterConfigs' }, { api: 'DescribeConfigs' }], run: adminAlterConfigs },
  { name: 'admin.incremental_alter_configs', needs: [{ api: 'IncrementalAlterConfigs' }, { api: 'DescribeConfigs' }], run: adminIncrementalAlterConfigs },
  { name: 'admin.groups', needs: [{ api: 'Produce' }, ...GROUP, { api: 'ListGroups' }, { api: 'DescribeGroups' }, { api: 'DeleteGroups' }], run: adminGroups },
  { name: 'admin.delete_records', needs: [{ api: 'DeleteRecords' }, ...PRODUCE, { api: 'ListOffsets' }], run: adminDeleteRecords },
  { name: 'idempotent.produce', needs: [{ api: 'InitProducerId' }, ...PRODUCE], run: idempotentProduce },
  { name: 'idempotent.duplicate_batch', needs: [{ api: 'InitProducerId' }, ...PRODUCE], run: idempotentDuplicateBatch }
]

// ---- main --------------------------------------------------------------------------------------

// An error outside any awaited promise (a stream or socket without a listener) belongs to the
// scenario running now: it fails that scenario instead of killing the runner.
function stray (kind) {
  return error => {
    if (current) {
      current.log(`${kind}: ${errorText(error)}`)
      current.abort(fatal(`${kind}: ${errorText(error)}`))
    } else {
      err(`[${stamp()}] ${kind} between scenarios (ignored): ${errorText(error)}`)
    }
  }
}
process.on('unhandledRejection', stray('unhandled rejection'))
process.on('uncaughtException', stray('uncaught exception'))

async function loadApiVersions () {
  if (args['api-versions'] !== undefined) {
    let text
    try {
      text = readFileSync(args['api-versions'], 'utf8')
    } catch (error) {
      usage(`--api-versions: ${error.message}`)
    }
    return parseApiVersions(text, args['api-versions'])
  }
  // Standalone use: ask the broker (ApiVersions v3).
  const admin = new Admin({ clientId: `sluice-compat-${CLIENT}-probe`, bootstrapBrokers: BOOTSTRAP, timeout: REQUEST_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectTimeout: REQUEST_TIMEOUT_MS, retries: 2 })
  try {
    const apis = await withDeadline(admin.listApis(), TIMEOUT_MS, 'ApiVersions')
    err(`[${stamp()}] no --api-versions: using the broker's own ApiVersions answer (${apis.length} APIs)`)
    return new Map(apis.map(a => [a.apiKey, { min: a.minVersion, max: a.maxVersion }]))
  } catch (error) {
    err(`no --api-versions, and ApiVersions to ${BOOTSTRAP.join(',')} failed: ${errorText(error)}`)
    process.exit(2)
  } finally {
    await withDeadline(admin.close(), CLOSE_BOUND_MS, 'closing the probe').catch(() => {})
  }
}

async function runScenario (scenario, brokerApis) {
  const full = `${CLIENT}/${scenario.name}`
  const why = [...BASE, ...scenario.needs].map(req => unmet(req, brokerApis)).find(Boolean) ?? scenario.clientLacks?.()
  if (why) {
    out(`SKIP ${full}: ${oneLine(why)}`)
    return 'SKIP'
  }
  const s = new Run(scenario.name)
  current = s
  s.log('start')
  const bound = setTimeout(() => s.abort(fatal(`the scenario did not finish within ${SCENARIO_BOUND_MS} ms`)), SCENARIO_BOUND_MS)
  let failure = null
  try {
    await Promise.race([scenario.run(s), s.aborted])
  } catch (error) {
    failure = error
  } finally {
    clearTimeout(bound)
  }
  // Even a scenario that passed must close what it opened; an abort arriving while closing (a
  // stray error from a closing client) no longer changes the verdict.
  await s.closeAll()
  current = null
  const took = ((Date.now() - s.started) / 1000).toFixed(1)
  if (failure) {
    s.log(`FAIL after ${took} s: ${errorText(failure)}`)
    if (failure.stack && !failure.fatal) s.log(failure.stack)
    s.diagnostics()
    // A client error that does not say which request failed (a timeout, a lost connection) gets
    // the requests left without an answer, or else the last failed one, named.
    const unanswered = [...s.unanswered].map(r => r.api)
    const lastFailed = s.failedRequests.at(-1)?.api
    let where = ''
    if (!failure.fatal && !/\(v\d+\)/.test(errorText(failure))) {
      if (unanswered.length) where = ` (no answer to ${unanswered.slice(0, 3).join(', ')})`
      else if (lastFailed) where = ` (last failed request: ${lastFailed})`
    }
    out(`FAIL ${full}: ${oneLine(errorText(failure) + where)}`)
    return 'FAIL'
  }
  s.log(`pass in ${took} s; requests sent: ${s.requestSummary()}`)
  out(`PASS ${full}`)
  return 'PASS'
}

async function main () {
  const brokerApis = await loadApiVersions()
  REPLICAS = (brokerApis.get(API.CreateTopics)?.max ?? -1) >= 4 ? -1 : 1
  err(`[${stamp()}] ${CLIENT_NAME} on Node ${process.versions.node}; bootstrap ${BOOTSTRAP.join(',')}; prefix ${PREFIX}; wait deadline ${TIMEOUT_MS} ms`)
  const tally = { PASS: 0, FAIL: 0, SKIP: 0 }
  for (const scenario of SCENARIOS) {
    if (ONLY && !ONLY.test(`${CLIENT}/${scenario.name}`)) continue
    tally[await runScenario(scenario, brokerApis)]++
  }
  err(`[${stamp()}] ${CLIENT}: ${tally.PASS} passed, ${tally.FAIL} failed, ${tally.SKIP} skipped`)
  return tally.FAIL ? 1 : 0
}

// Exit explicitly: clients are closed, but a socket or timer one left behind must not keep the
// runner alive, and a bug in the runner itself (the stray-error handlers above would swallow it)
// must not end in exit status 0.
main().then(code => process.exit(code), error => {
  err(`suite.mjs: the runner itself failed: ${error?.stack ?? error}`)
  process.exit(2)
})
