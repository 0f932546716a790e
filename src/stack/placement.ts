/**
 * Where a global service's tasks belong: every node that is ready, active,
 * and matches the service's placement constraints and platforms. Swarm's own
 * `ServiceStatus.DesiredTasks` leaves out a node whose task was rejected (a
 * missing image, say) or waits to restart, so a health gate that trusted it
 * would call a service converged with a node short. Pure: nodes and a spec in,
 * nodes out.
 */
import type { Service, SwarmNode, TaskSpec } from '../docker/index.js';

type Placement = NonNullable<TaskSpec['Placement']>;

/** The node field a constraint names (docker service create --constraint); keys without case, label names with. */
function attribute(node: SwarmNode, key: string): string | undefined {
  const lower = key.toLowerCase();
  for (const [prefix, labels] of [
    ['node.labels.', node.Spec.Labels],
    ['engine.labels.', node.Description?.Engine?.Labels],
  ] as const) {
    if (lower.startsWith(prefix)) return labels?.[key.slice(prefix.length)];
  }
  const fields: Record<string, string | undefined> = {
    'node.id': node.ID,
    'node.hostname': node.Description?.Hostname,
    'node.role': node.Spec.Role,
    'node.platform.os': node.Description?.Platform?.OS,
    'node.platform.arch': node.Description?.Platform?.Architecture,
  };
  return fields[lower];
}

/**
 * One constraint, `KEY==VALUE` or `KEY!=VALUE`, as swarm evaluates it: values
 * compare without case; an absent attribute fails `==` and passes `!=`. An
 * expression it cannot read matches nothing, as swarm then places no task.
 */
export function matchesConstraint(node: SwarmNode, expr: string): boolean {
  const m = /^\s*([^=!\s]+)\s*(==|!=)\s*(.*?)\s*$/.exec(expr);
  if (!m) return false;
  const actual = attribute(node, m[1]!);
  const equal = actual !== undefined && actual.toLowerCase() === m[3]!.toLowerCase();
  return m[2] === '==' ? equal : !equal;
}

/** Swarm's platform names for a node's reported architecture (x86_64 → amd64, aarch64 → arm64). */
const ARCH: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64' };
const archOf = (a: string | undefined) => (a === undefined ? undefined : ARCH[a] ?? a);

/** Whether a node meets a placement's constraints and platforms (readiness aside). */
export function admits(placement: Placement | undefined, node: SwarmNode): boolean {
  const constraints = placement?.Constraints ?? [];
  const platforms = placement?.Platforms ?? [];
  return (
    constraints.every((c) => matchesConstraint(node, c)) &&
    (platforms.length === 0 ||
      platforms.some(
        (p) =>
          (!p.OS || p.OS === node.Description?.Platform?.OS) &&
          (!p.Architecture || archOf(p.Architecture) === archOf(node.Description?.Platform?.Architecture)),
      ))
  );
}

/** The nodes a global service should run a task on. */
export function eligibleNodes(service: Service, nodes: readonly SwarmNode[]): SwarmNode[] {
  const placement = service.Spec.TaskTemplate?.Placement;
  return nodes.filter((n) => n.Status.State === 'ready' && (n.Spec.Availability ?? 'active') === 'active' && admits(placement, n));
}
