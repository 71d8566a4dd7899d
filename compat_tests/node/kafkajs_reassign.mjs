// A partition reassignment (KIP-455) made with KafkaJS's admin client, as README "Moving
// partitions" shows it: a topic created on brokers [1,2] moves to [2,3] while its records stay.
//
//   node kafkajs_reassign.mjs <bootstrap> <topic>
//
// Exits 0 once the move is done and checked, 1 on any failure (with the reason on stderr).
import kafkajs from 'kafkajs'

const { Kafka, logLevel } = kafkajs
const [bootstrap, topic] = process.argv.slice(2)
if (!bootstrap || !topic) {
  console.error('usage: node kafkajs_reassign.mjs <bootstrap> <topic>')
  process.exit(2)
}

const records = 200
const kafka = new Kafka({ clientId: 'sluice-kafkajs-reassign', brokers: bootstrap.split(','),
                          logLevel: logLevel.NOTHING })
const admin = kafka.admin()
const producer = kafka.producer({ idempotent: true })

function check(what, ok, detail) {
  if (!ok) throw new Error(`${what}: ${detail}`)
}

async function partitionZero() {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
  return topics[0].partitions.find(p => p.partitionId === 0)
}

try {
  await admin.connect()
  await producer.connect()
  check('createTopics', await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, replicaAssignment: [{ partition: 0, replicas: [1, 2] }] }],
  }), 'the topic was not created')
  for (let i = 0; i < records; i += 50) {
    await producer.send({
      topic, acks: -1,
      messages: Array.from({ length: 50 }, (_, j) => ({ key: `k${i + j}`, value: `v${i + j}` })),
    })
  }

  // The README's calls: move partition 0 to [2,3], then watch until nothing is in progress.
  await admin.alterPartitionReassignments({
    topics: [{ topic, partitionAssignment: [{ partition: 0, replicas: [2, 3] }] }],
  })
  const deadline = Date.now() + 60_000
  for (;;) {
    const { topics } = await admin.listPartitionReassignments({})
    if (!topics.some(t => t.name === topic)) break
    check('reassignment', Date.now() < deadline, `still in progress: ${JSON.stringify(topics)}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }

  // Metadata may lag the controller's last write by one watch event.
  let p
  for (;;) {
    p = await partitionZero()
    const done = [...p.replicas].sort().join() === '2,3' && [...p.isr].sort().join() === '2,3'
    if (done) break
    check('replicas after the move', Date.now() < deadline,
          `replicas ${p.replicas}, isr ${p.isr}, leader ${p.leader}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  check('leader after the move', [2, 3].includes(p.leader), `leader ${p.leader}`)
  // A new leader shows no high watermark until its followers have fetched in its epoch (Kafka's
  // rule: LEADER_NOT_AVAILABLE to ListOffsets before v5, which KafkaJS sends).
  let offsets
  for (;;) {
    try {
      ;[offsets] = await admin.fetchTopicOffsets(topic)
      if (offsets.high === String(records)) break
    } catch (e) {
      if (e.type !== 'LEADER_NOT_AVAILABLE') throw e
    }
    check('high watermark after the move', Date.now() < deadline,
          `${offsets?.high}, expected ${records}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  console.log(`${topic}-0 moved to [${p.replicas}] (isr [${p.isr}], leader ${p.leader}), ` +
              `${offsets.high} records`)
} catch (e) {
  console.error(`FAIL: ${e.message}`)
  process.exitCode = 1
} finally {
  await producer.disconnect().catch(() => {})
  await admin.disconnect().catch(() => {})
}
