import { NodeRole, type ClusterStatusResponse, type NodeStatus } from "../../gen/raftkv/v1/cluster_pb.js";

/**
 * What the cluster page shows, computed from ClusterStatus answers: plain functions with no DOM, so the
 * rendering is one string and the logic is the same in any JavaScript runtime.
 */

/** One member's cumulative counters when they were read, to turn two answers into rates. */
export interface CounterSample {
  readonly writes: number;
  readonly reads: number;
  readonly atMs: number;
}

export interface Rates {
  readonly writesPerSecond: number;
  readonly readsPerSecond: number;
}

const roleNames: Record<NodeRole, string> = {
  [NodeRole.UNSPECIFIED]: "unknown",
  [NodeRole.FOLLOWER]: "follower",
  [NodeRole.PRECANDIDATE]: "precandidate",
  [NodeRole.CANDIDATE]: "candidate",
  [NodeRole.LEADER]: "leader",
};

/** The members' counters in `answer`, by member id. */
export function counterSamples(answer: ClusterStatusResponse, atMs: number): Map<bigint, CounterSample> {
  const samples = new Map<bigint, CounterSample>();
  for (const m of answer.members) {
    if (m.status !== undefined && m.member !== undefined)
      samples.set(m.member.id, { writes: Number(m.status.writesTotal), reads: Number(m.status.readsTotal), atMs });
  }
  return samples;
}

/**
 * The cluster's write and read rates between two answers: per member, the growth of its counters over
 * the time between them, summed. A member missing from either answer, or whose counters went back
 * (it restarted), adds nothing rather than a negative rate.
 */
export function clusterRates(before: ReadonlyMap<bigint, CounterSample>, after: ReadonlyMap<bigint, CounterSample>): Rates {
  let writesPerSecond = 0;
  let readsPerSecond = 0;
  for (const [id, now] of after) {
    const then = before.get(id);
    const seconds = then === undefined ? 0 : (now.atMs - then.atMs) / 1000;
    if (then === undefined || seconds <= 0 || now.writes < then.writes || now.reads < then.reads) continue;
    writesPerSecond += (now.writes - then.writes) / seconds;
    readsPerSecond += (now.reads - then.reads) / seconds;
  }
  return { writesPerSecond, readsPerSecond };
}

/** The leader: the member that says it leads in the highest term (a deposed leader may not know yet). */
export function leaderOf(answer: ClusterStatusResponse): NodeStatus | undefined {
  let leader: NodeStatus | undefined;
  for (const m of answer.members) {
    if (m.status?.role === NodeRole.LEADER && (leader === undefined || m.status.term > leader.term)) leader = m.status;
  }
  return leader;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Status reports 0 when the node does not know its data directory: shown as unknown, not as empty. */
function bytesText(bytes: bigint): string {
  const n = Number(bytes);
  if (n === 0) return "?";
  if (n >= 1024 * 1024 * 1024) return `${(n / 1024 / 1024 / 1024).toFixed(1)} GiB`;
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function timeText(unixMs: bigint): string {
  return new Date(Number(unixMs)).toISOString().slice(11, 19);
}

/** The page's HTML for one answer (and the rates since the previous one; undefined on the first). */
export function renderCluster(answer: ClusterStatusResponse, rates: Rates | undefined, updatedAtMs: number): string {
  const leader = leaderOf(answer);
  const names = new Map(answer.members.map((m) => [m.member?.id ?? 0n, m.member?.name ?? "?"]));
  const nameOf = (id: bigint): string => (id === 0n ? "none" : `${names.get(id) ?? "?"} (id ${id})`);
  const match = new Map((leader?.progress ?? []).map((p) => [p.id, p.matchIndex]));

  const rows = answer.members.map((m) => {
    const id = m.member?.id ?? 0n;
    const s = m.status;
    if (s === undefined) {
      return `<tr data-member-id="${id}" data-role="unreachable"><td>${id}</td><td>${escape(m.member?.name ?? "?")}</td><td class="down">unreachable</td><td colspan="8">${escape(m.error)}</td></tr>`;
    }
    const role = roleNames[s.role];
    const matched = match.get(id);
    const lag =
      leader === undefined || matched === undefined ? "" : s.role === NodeRole.LEADER ? "0" : String(leader.lastLogIndex - matched);
    const alarms = s.alarms.length === 0 ? "" : escape(s.alarms.join("; "));
    return [
      `<tr data-member-id="${id}" data-role="${role}">`,
      `<td>${id}</td><td>${escape(s.name)}</td><td class="${role}">${role}</td><td>${s.term}</td><td>${escape(nameOf(s.leader))}</td>`,
      `<td>${s.commitIndex}</td><td>${s.appliedIndex}</td><td class="lag">${lag}</td>`,
      `<td>${escape(s.version)}</td><td>${bytesText(s.dataBytes)}</td><td class="alarm">${alarms}</td></tr>`,
    ].join("");
  });

  const changes = [...answer.leaderChanges]
    .reverse()
    .map(
      (c) =>
        `<li>${timeText(c.seenUnixMs)}: term ${c.term}, ${c.leader === 0n ? "leader lost" : `leader ${escape(nameOf(c.leader))}`}</li>`,
    );

  const rateText = (perSecond: number | undefined): string => (perSecond === undefined ? "…" : perSecond.toFixed(1));
  return [
    `<h1>raftkv cluster</h1>`,
    `<p class="summary">leader <strong id="leader" data-leader-id="${leader?.id ?? 0n}">${leader === undefined ? "none" : escape(nameOf(leader.id))}</strong>`,
    ` · term <strong id="term">${leader?.term ?? "?"}</strong>`,
    ` · writes/s <strong id="write-rate">${rateText(rates?.writesPerSecond)}</strong>`,
    ` · reads/s <strong id="read-rate">${rateText(rates?.readsPerSecond)}</strong></p>`,
    `<table id="members"><thead><tr><th>id</th><th>name</th><th>role</th><th>term</th><th>knows leader</th><th>commit</th><th>applied</th>`,
    `<th title="entries behind the leader's log (from the leader's replication progress)">lag</th><th>version</th><th>data</th><th>alarms</th></tr></thead>`,
    `<tbody>${rows.join("")}</tbody></table>`,
    `<h2>Recent leader changes</h2>`,
    changes.length === 0 ? `<p id="leader-changes">none seen</p>` : `<ol id="leader-changes">${changes.join("")}</ol>`,
    `<p class="footer">as seen by node ${answer.header?.memberId ?? "?"} at ${new Date(updatedAtMs).toISOString().slice(11, 19)}; refreshed every second</p>`,
  ].join("\n");
}
