// Produce and consume through a real Sluice broker with @platformatic/kafka (pure JavaScript
// client, pinned in package.json). This client only implements Fetch v12-17 and picks the highest
// version the broker advertises, so against a broker advertising Fetch up to 13+ it fetches by
// topic id (KIP-516): the request names each topic by the UUID from Metadata, and the client maps
// the response's topic ids back to names (messages-stream.js), dropping partitions whose id it does
// not know. A round trip with exact content therefore proves the broker resolves topic ids and
// echoes them back.
//
// Usage: node platformatic_roundtrip.mjs HOST:PORT     (compat_tests/node_platformatic.sh runs it)
//
// Client behaviour relied on (@platformatic/kafka 1.35.0, dist/):
// - clients/base/base.js [kGetApi]: for each API, the highest version in the broker's advertised
//   range that the client implements.
// - network/connection.js: every request is published on the diagnostics tracing channel
//   "plt:kafka:connections:api" (start: apiKey/apiVersion; asyncStart: the parsed response or the
//   error). The test subscribes to it to record which versions were really sent.
// - A null key/value/header value is read back as `undefined` (messages-stream.js: `?? undefined`);
//   an empty one as a zero-length Buffer. Without deserializers every field stays a Buffer.

import diagnosticsChannel from 'node:diagnostics_channel'
import { Admin, Consumer, Producer } from '@platformatic/kafka'

const TOPIC_PARTITIONS = 3
const MESSAGE_COUNT = 100
const TEST_TIMEOUT_MS = Number(process.env.SLUICE_NODE_TIMEOUT_MS ?? 45_000)
const API_FETCH = 1
const API_PRODUCE = 0
const API_JOIN_GROUP = 11

const bootstrap = process.argv[2] ?? process.env.SLUICE_BOOTSTRAP
if (!bootstrap || !/^127\.0\.0\.1:\d+$/.test(bootstrap)) {
  console.error('usage: node platformatic_roundtrip.mjs 127.0.0.1:PORT')
  process.exit(2)
}

const started = Date.now()
let currentStep = 'start'
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(2)} s`
const log = msg => console.log(`[${elapsed()}] ${msg}`)

// ---- request recording -------------------------------------------------------------------------

const sent = [] // { apiKey, apiVersion, error, fetch: { topicIds:Set, records, errors } }
const byContext = new WeakMap()
const fetchWaiters = [] // resolved when a Fetch response arrives

function onFetchResponse (entry, result) {
  const info = { topicIds: new Set(), records: 0 }
  for (const topic of result?.responses ?? []) {
    info.topicIds.add(topic.topicId)
    for (const partition of topic.partitions ?? []) {
      for (const batch of partition.records ?? []) info.records += batch.records.length
    }
  }
  entry.fetch = info
  for (const w of fetchWaiters.splice(0)) w()
}

diagnosticsChannel.tracingChannel('plt:kafka:connections:api').subscribe({
  start (ctx) {
    if (ctx.operation !== 'send' || byContext.has(ctx)) return
    const entry = { apiKey: ctx.apiKey, apiVersion: ctx.apiVersion, error: null, fetch: null }
    byContext.set(ctx, entry)
    sent.push(entry)
  },
  end () {},
  asyncStart (ctx) {
    const entry = byContext.get(ctx)
    if (!entry) return
    if (ctx.error) entry.error = ctx.error
    if (entry.apiKey === API_FETCH) onFetchResponse(entry, ctx.error ? ctx.error.response : ctx.result)
  },
  asyncEnd () {},
  error (ctx) {
    const entry = byContext.get(ctx)
    if (entry && ctx.error) entry.error = ctx.error
  }
})

function describeError (error) {
  if (!error) return 'none'
  const parts = [`${error.name ?? 'Error'}: ${error.message}`]
  if (error.errors?.length) parts.push(...error.errors.map(e => `  - ${describeError(e)}`))
  if (error.cause) parts.push(`  cause: ${describeError(error.cause)}`)
  if (error.apiId !== undefined || error.apiCode !== undefined) {
    parts.push(`  (api ${error.apiId ?? '?'} error code ${error.apiCode ?? '?'})`)
  }
  return parts.join('\n')
}

function requestSummary () {
  const counts = new Map()
  for (const r of sent) {
    const k = `api ${r.apiKey} v${r.apiVersion}`
    const c = counts.get(k) ?? { n: 0, errors: 0 }
    c.n++
    if (r.error) c.errors++
    counts.set(k, c)
  }
  return [...counts].map(([k, c]) => `${k} x${c.n}${c.errors ? ` (${c.errors} failed)` : ''}`).join(', ')
}

const clients = [] // [client, force-close supported]
async function closeAll () {
  await Promise.allSettled(clients.map(async ([client, force]) => (force ? client.close(true) : client.close())))
}

let failing = false
async function fail (message, error) {
  if (failing) {
    // A second failure while the first one is closing the clients: report it and leave now.
    console.error(`FAIL (while failing) [${currentStep}, ${elapsed()}]: ${message}`)
    if (error) console.error(describeError(error))
    process.exit(1)
  }
  failing = true
  console.error(`FAIL [${currentStep}, ${elapsed()}]: ${message}`)
  if (error) console.error(describeError(error))
  console.error(`requests sent: ${requestSummary() || 'none'}`)
  const fetched = sent.filter(r => r.apiKey === API_FETCH && r.fetch)
  if (fetched.length) {
    const ids = [...new Set(fetched.flatMap(r => [...r.fetch.topicIds]))]
    console.error(`Fetch responses: ${fetched.length} (v${[...new Set(fetched.map(r => r.apiVersion))].join(',')}), ` +
      `${fetched.reduce((n, r) => n + r.fetch.records, 0)} records, topic ids in them: ${ids.join(', ')}; ` +
      `Metadata's id for ${topic}: ${knownTopicId ?? 'not read yet'}`)
  }
  for (const r of sent.filter(r => r.error).slice(0, 5)) {
    console.error(`failed request api ${r.apiKey} v${r.apiVersion}: ${describeError(r.error)}`)
  }
  // Bounded: a client that does not close in 2 s is abandoned.
  await Promise.race([closeAll(), new Promise(resolve => setTimeout(resolve, 2000))]).catch(() => {})
  process.exit(1)
}

const watchdog = setTimeout(() => {
  fail(`the whole test took longer than ${TEST_TIMEOUT_MS} ms`)
}, TEST_TIMEOUT_MS)

process.on('unhandledRejection', error => fail('unhandled rejection', error))
process.on('uncaughtException', error => fail('uncaught exception', error))

// Runs one step with its own time bound and a name for the failure message.
async function step (name, ms, fn) {
  currentStep = name
  let timer
  try {
    return await Promise.race([
      fn(),
      new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`step did not finish within ${ms} ms`)), ms)
      })
    ])
  } catch (error) {
    await fail(`${name} failed`, error)
  } finally {
    clearTimeout(timer)
  }
}

function check (condition, message) {
  if (!condition) throw new Error(message)
}

// ---- the data ----------------------------------------------------------------------------------

const runId = `${process.pid}-${Date.now()}`
const topic = `platformatic-roundtrip-${runId}`
const groupId = `platformatic-group-${runId}`
const common = {
  bootstrapBrokers: [bootstrap],
  timeout: 5000,
  connectTimeout: 3000,
  retries: 3,
  retryDelay: 250,
  strict: true
}

// Message i goes to partition i % 3. Keys are unique except two null keys; values include a null
// (i = 13), an empty value (i = 14), binary bytes 0..255 (i = 20) and values of growing size.
// Headers: two per message, in order; a duplicate name on i % 10 == 0; a null header value on
// i % 25 == 1; none at all on i = 30; an empty header value on i = 31.
function makeMessage (i) {
  let key = Buffer.from(`key-${i}`)
  if (i === 7 || i === 55) key = null
  let value = Buffer.from(`value ${i} ${'x'.repeat(i % 17)}`)
  if (i === 13) value = null
  if (i === 14) value = Buffer.alloc(0)
  if (i === 20) value = Buffer.from(Array.from({ length: 256 }, (_, b) => b))
  let headers = [
    ['idx', Buffer.from(String(i))],
    ['kind', Buffer.from(i % 2 ? 'odd' : 'even')]
  ]
  if (i % 10 === 0) headers.push(['idx', Buffer.from(`dup-${i}`)])
  if (i % 25 === 1) headers.push(['nullable', null])
  if (i === 30) headers = []
  if (i === 31) headers.push(['empty', Buffer.alloc(0)])
  return { i, partition: i % TOPIC_PARTITIONS, key, value, headers }
}

const expected = Array.from({ length: MESSAGE_COUNT }, (_, i) => makeMessage(i))

// Buffer-keyed Map: distinct Buffer objects keep duplicate header names (Kafka allows them).
function headersMap (headers) {
  return new Map(headers.map(([k, v]) => [Buffer.from(k), v]))
}

const show = b => (b === undefined ? 'null' : b === null ? 'null(raw)' : Buffer.isBuffer(b) ? `0x${b.toString('hex')}` : `${typeof b}:${String(b)}`)
// The client reads a null back as undefined; compare on that representation.
const asRead = b => (b === null ? undefined : b)
const sameBytes = (a, b) => (a === undefined || b === undefined ? a === b : Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b))

// ---- the test ----------------------------------------------------------------------------------

const admin = new Admin({ clientId: 'sluice-compat-admin', ...common })
clients.push([admin, false])

const fetchRange = await step('ApiVersions (admin.listApis)', 10_000, async () => {
  const apis = await admin.listApis()
  const fetchApi = apis.find(a => a.name === 'Fetch' || a.apiKey === API_FETCH)
  check(fetchApi, `the broker does not advertise Fetch: ${JSON.stringify(apis)}`)
  check(fetchApi.maxVersion >= 13, `the broker advertises Fetch v${fetchApi.minVersion}-${fetchApi.maxVersion}; topic ids need v13+`)
  return fetchApi
})
log(`broker advertises Fetch v${fetchRange.minVersion}-${fetchRange.maxVersion}`)
// The client implements Fetch v12-17 (dist/apis/consumer/fetch-v*.js) and takes the highest.
const expectedFetchVersion = Math.min(fetchRange.maxVersion, 17)

let knownTopicId = null // for failure messages
const topicId = await step('create topic and read its id', 15_000, async () => {
  const created = await admin.createTopics({ topics: [topic], partitions: TOPIC_PARTITIONS, replicas: 1 })
  check(created.length === 1 && created[0].name === topic, `createTopics returned ${JSON.stringify(created)}`)
  check(created[0].partitions === TOPIC_PARTITIONS, `createTopics reports ${created[0].partitions} partitions`)
  const metadata = await admin.metadata({ topics: [topic], forceUpdate: true })
  const t = metadata.topics.get(topic)
  check(t, `metadata does not list ${topic}`)
  check(t.partitionsCount === TOPIC_PARTITIONS, `metadata lists ${t.partitionsCount} partitions`)
  check(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(t.id) &&
    t.id !== '00000000-0000-0000-0000-000000000000', `metadata gives topic id ${t.id}, not a real UUID`)
  check(created[0].id === undefined || created[0].id === t.id, `CreateTopics id ${created[0].id} != Metadata id ${t.id}`)
  knownTopicId = t.id
  return t.id
})
log(`created ${topic} with ${TOPIC_PARTITIONS} partitions, topic id ${topicId}`)

const producer = new Producer({ clientId: 'sluice-compat-producer', ...common })
clients.push([producer, true])

// Four sends of 25 messages each: several batches per partition.
const produceOffsets = await step('produce', 20_000, async () => {
  const nextOffset = new Map()
  for (let start = 0; start < MESSAGE_COUNT; start += 25) {
    const batch = expected.slice(start, start + 25)
    // acks per send: 1.35.0 ignores the constructor's `acks` and defaults each send to 1
    // (producer.js send(): `options.acks ??= idempotent ? ALL : LEADER`).
    const result = await producer.send({
      acks: -1,
      messages: batch.map(m => ({
        topic,
        partition: m.partition,
        key: m.key ?? undefined,
        value: m.value,
        headers: headersMap(m.headers)
      }))
    })
    for (const { partition, offset } of result.offsets ?? []) {
      const want = nextOffset.get(partition) ?? 0n
      check(offset === want, `send #${start / 25}: partition ${partition} base offset ${offset}, expected ${want}`)
    }
    for (const m of batch) nextOffset.set(m.partition, (nextOffset.get(m.partition) ?? 0n) + 1n)
  }
  return nextOffset
})
await producer.close()
log(`produced ${MESSAGE_COUNT} messages in 4 sends; end offsets ${[...produceOffsets].map(([p, o]) => `p${p}=${o}`).join(' ')}`)

// The consumer: a fresh group, committed offsets with earliest as the fallback (OffsetFetch finds
// nothing, ListOffsets earliest), manual commits. Short timeouts so the test stays quick.
const consumer = new Consumer({
  clientId: 'sluice-compat-consumer',
  groupId,
  sessionTimeout: 10_000,
  rebalanceTimeout: 10_000,
  heartbeatInterval: 500,
  maxWaitTime: 300,
  ...common
})
clients.push([consumer, true])

const received = []
await step('consume', 30_000, async () => {
  const stream = await consumer.consume({
    topics: [topic],
    mode: 'committed',
    fallbackMode: 'earliest',
    autocommit: false
  })
  await new Promise((resolve, reject) => {
    stream.on('error', reject)
    stream.on('data', message => {
      received.push(message)
      if (received.length > MESSAGE_COUNT) {
        reject(new Error(`message ${received.length} arrived, more than the ${MESSAGE_COUNT} produced: partition ${message.partition} offset ${message.offset}`))
      }
      if (received.length === MESSAGE_COUNT) {
        // Nothing beyond the count: wait for two more complete Fetch responses (each a full
        // fetch of every assigned partition) and check no message came with them.
        let more = 2
        const next = () => {
          if (--more === 0) resolve()
          else fetchWaiters.push(next)
        }
        fetchWaiters.push(next)
      }
    })
  })
  check(received.length === MESSAGE_COUNT, `received ${received.length} messages, expected ${MESSAGE_COUNT}`)
  // Commit the last message of each partition (OffsetCommit), then read the commits back.
  const last = new Map()
  for (const m of received) last.set(m.partition, m)
  for (const m of last.values()) await m.commit()
  const committed = await consumer.listCommittedOffsets({
    topics: [{ topic, partitions: [...Array(TOPIC_PARTITIONS).keys()] }]
  })
  const offsets = committed.get(topic)
  for (let p = 0; p < TOPIC_PARTITIONS; p++) {
    check(offsets?.[p] === produceOffsets.get(p), `committed offset of partition ${p} is ${offsets?.[p]}, expected ${produceOffsets.get(p)}`)
  }
  await stream.close()
})
log(`consumed ${received.length} messages with group ${groupId}; committed offsets match`)

currentStep = 'verify content'
try {
  for (let p = 0; p < TOPIC_PARTITIONS; p++) {
    const want = expected.filter(m => m.partition === p)
    const got = received.filter(m => m.partition === p)
    check(got.length === want.length, `partition ${p}: ${got.length} messages, expected ${want.length}`)
    for (let j = 0; j < want.length; j++) {
      const w = want[j]
      const g = got[j]
      const where = `partition ${p} position ${j} (message ${w.i})`
      check(g.topic === topic, `${where}: topic ${g.topic}`)
      check(g.offset === BigInt(j), `${where}: offset ${g.offset}, expected ${j} (order or gap)`)
      check(sameBytes(g.key, asRead(w.key)), `${where}: key ${show(g.key)}, expected ${show(asRead(w.key))}`)
      check(sameBytes(g.value, asRead(w.value)), `${where}: value ${show(g.value)}, expected ${show(asRead(w.value))}`)
      const gh = [...g.headers]
      check(gh.length === w.headers.length, `${where}: ${gh.length} headers, expected ${w.headers.length}`)
      for (let h = 0; h < w.headers.length; h++) {
        const [wk, wv] = w.headers[h]
        const [gk, gv] = gh[h]
        check(Buffer.isBuffer(gk) && gk.toString() === wk, `${where}: header ${h} name ${show(gk)}, expected ${wk}`)
        check(sameBytes(gv, asRead(wv)), `${where}: header ${h} (${wk}) value ${show(gv)}, expected ${show(asRead(wv))}`)
      }
    }
  }
  // The special cases really are what they claim to be.
  const byIndex = i => received.find(m => m.partition === i % TOPIC_PARTITIONS && m.offset === BigInt(Math.floor(i / TOPIC_PARTITIONS)))
  check(byIndex(13).value === undefined, 'message 13: null value did not come back as null')
  check(Buffer.isBuffer(byIndex(14).value) && byIndex(14).value.length === 0, 'message 14: empty value did not come back empty')
  check(byIndex(7).key === undefined, 'message 7: null key did not come back as null')

  // Which Fetch the consumer really sent, and what the responses carried.
  const fetches = sent.filter(r => r.apiKey === API_FETCH)
  check(fetches.length > 0, 'no Fetch request was recorded')
  const versions = [...new Set(fetches.map(r => r.apiVersion))]
  check(versions.length === 1 && versions[0] === expectedFetchVersion,
    `Fetch versions sent: ${versions.join(',')}; expected only v${expectedFetchVersion}`)
  check(versions[0] >= 13, `Fetch v${versions[0]} does not name topics by id`)
  // The one expected error answer: KIP-394's first JoinGroup (v4+) without a member id gets
  // MEMBER_ID_REQUIRED with the id to use. Anything else is reported with its API and version.
  const protocolIds = e => (e?.errors ?? []).map(x => x.apiId)
  const unexpected = sent.filter(r => r.error &&
    !(r.apiKey === API_JOIN_GROUP && protocolIds(r.error).every(id => id === 'MEMBER_ID_REQUIRED') &&
      protocolIds(r.error).length > 0))
  check(unexpected.length === 0, `${unexpected.length} requests failed unexpectedly; first: api ${unexpected[0]?.apiKey} v${unexpected[0]?.apiVersion}: ${describeError(unexpected[0]?.error)}`)
  const answered = fetches.filter(r => r.fetch)
  const idsSeen = new Set(answered.flatMap(r => [...r.fetch.topicIds]))
  check(idsSeen.size === 1 && idsSeen.has(topicId),
    `Fetch responses named topic ids ${[...idsSeen].join(',')}; expected only ${topicId}`)
  const fetchedRecords = answered.reduce((n, r) => n + r.fetch.records, 0)
  check(fetchedRecords >= MESSAGE_COUNT, `Fetch responses carried ${fetchedRecords} records in all, expected >= ${MESSAGE_COUNT}`)
  const produces = [...new Set(sent.filter(r => r.apiKey === API_PRODUCE).map(r => r.apiVersion))]
  log(`Fetch v${versions[0]} x${fetches.length} (${answered.length} answered, ${fetchedRecords} records, topic id ${topicId}); Produce v${produces.join(',')}`)
  log(`all requests: ${requestSummary()}`)
} catch (error) {
  await fail('content check failed', error)
}

currentStep = 'close'
await step('close clients', 10_000, async () => {
  await consumer.close()
  await admin.close()
})
clearTimeout(watchdog)
console.log(`PASS platformatic_roundtrip: ${MESSAGE_COUNT} messages over ${TOPIC_PARTITIONS} partitions via Fetch v${expectedFetchVersion} by topic id in ${elapsed()}`)
process.exit(0)
