import { readFileSync } from 'node:fs'

/** Linux's USER_HZ: /proc reports CPU times in these ticks. */
const CLOCK_TICKS = 100

/**
 * CPU time (user + system) process `pid` has used so far, in microseconds, from /proc/PID/stat.
 * Ticks are 10 ms: read it around windows of seconds, not single calls.
 */
export function cpuMicros (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the fields after the command name, which is in parentheses and may contain spaces
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1e6 / CLOCK_TICKS
}

/** Resident set size of process `pid` in bytes. */
export function rssBytes (pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (match === null) throw new Error(`no VmRSS for ${pid}`)
  return Number(match[1]) * 1024
}

/**
 * The host's CPU time so far, all CPUs, in ticks (/proc/stat): `steal` is time the hypervisor
 * gave this machine's CPUs to other guests; `total` counts every state, steal included.
 */
export function hostTimes (): { steal: number, total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is in user)
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number)
  return { steal: ticks[7] ?? 0, total: ticks.reduce((sum, t) => sum + t, 0) }
}

/** The share of the host's CPU time stolen between two readings of hostTimes, 0..1. */
export function stolenBetween (before: { steal: number, total: number }, after: { steal: number, total: number }): number {
  const total = after.total - before.total
  return total > 0 ? (after.steal - before.steal) / total : 0
}
