// A mirra agent pod as the API server sends it in a watch event (Kubernetes
// 1.32, DaemonSet-created, running and ready), without managedFields (the
// agent's watch should strip them: `kubectl get -o json --show-managed-fields=false`
// equivalent; they would add ~2-4 KB). Sized like a real pod: labels,
// ownerReferences, one container with env, probes, mounts, the projected
// service-account volume, DaemonSet tolerations and node affinity, status with
// conditions and podIPs.

/** The volumes of the pod: containerd's socket, content and certs.d, the projected service-account token. */
function podVolumes(): Array<Record<string, unknown>> {
  return [
    { name: 'containerd-socket', hostPath: { path: '/run/containerd/containerd.sock', type: 'Socket' } },
    { name: 'containerd-content', hostPath: { path: '/var/lib/containerd/io.containerd.content.v1.content', type: 'Directory' } },
    { name: 'containerd-certs', hostPath: { path: '/etc/containerd/certs.d', type: 'DirectoryOrCreate' } },
    {
      name: 'kube-api-access-8x2kq',
      projected: {
        sources: [
          { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
        ],
        defaultMode: 420,
      },
    },
  ];
}

/** The agent container, as the chart describes it. */
function agentContainer(): Record<string, unknown> {
  return {
    name: 'agent',
    image: 'ghcr.io/mirra-dev/mirra:0.1.0',
    args: ['agent', '--registry-addr=:5000', '--metrics-addr=:9090', '--mirror=docker.io', '--mirror=ghcr.io', '--mirror=quay.io', '--mirror=registry.k8s.io'],
    ports: [
      { name: 'registry', hostPort: 5000, containerPort: 5000, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ],
    env: [
      { name: 'NODE_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'spec.nodeName' } } },
      { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
      { name: 'MIRRA_LOG_LEVEL', value: 'info' },
    ],
    resources: { limits: { memory: '192Mi' }, requests: { cpu: '50m', memory: '128Mi' } },
    volumeMounts: [
      { name: 'containerd-socket', mountPath: '/run/containerd/containerd.sock' },
      { name: 'containerd-content', readOnly: true, mountPath: '/var/lib/containerd/io.containerd.content.v1.content' },
      { name: 'containerd-certs', mountPath: '/etc/containerd/certs.d' },
      { name: 'kube-api-access-8x2kq', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
    ],
    livenessProbe: {
      httpGet: { path: '/healthz', port: 'metrics', scheme: 'HTTP' },
      timeoutSeconds: 1,
      periodSeconds: 10,
      successThreshold: 1,
      failureThreshold: 3,
    },
    readinessProbe: {
      httpGet: { path: '/readyz', port: 'metrics', scheme: 'HTTP' },
      timeoutSeconds: 1,
      periodSeconds: 5,
      successThreshold: 1,
      failureThreshold: 3,
    },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
    securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
  };
}

/** Running and ready since `started`. */
function podStatus(hostIP: string, podIP: string, started: string): Record<string, unknown> {
  return {
    phase: 'Running',
    conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({
      type,
      status: 'True',
      lastProbeTime: null,
      lastTransitionTime: started,
    })),
    hostIP,
    hostIPs: [{ ip: hostIP }],
    podIP,
    podIPs: [{ ip: podIP }],
    startTime: started,
    containerStatuses: [
      {
        name: 'agent',
        state: { running: { startedAt: started } },
        lastState: {},
        ready: true,
        restartCount: 0,
        image: 'ghcr.io/mirra-dev/mirra:0.1.0',
        imageID: 'ghcr.io/mirra-dev/mirra@sha256:9b1e6c2d4f8a0b3c5d7e9f1a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c',
        containerID: `containerd://${'4c7e'.repeat(16)}`,
        started: true,
      },
    ],
    qosClass: 'Burstable',
  };
}

export function agentPod(index: number, annotations: Record<string, string>): Record<string, unknown> {
  const node = `ip-10-0-${Math.floor(index / 250)}-${index % 250}.eu-west-1.compute.internal`;
  const podIP = `10.1.${Math.floor(index / 250)}.${(index % 250) + 2}`;
  const hostIP = `10.0.${Math.floor(index / 250)}.${index % 250}`;
  const started = '2025-06-01T08:00:00Z';
  const suffix = (index * 7919).toString(36).padStart(5, 'x').slice(-5);
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      name: `mirra-agent-${suffix}`,
      generateName: 'mirra-agent-',
      namespace: 'mirra-system',
      uid: `3f0c7a52-9d1e-4b7a-8c2f-${(100000000000 + index).toString(16).padStart(12, '0')}`,
      resourceVersion: String(184467000 + index),
      creationTimestamp: started,
      labels: {
        'app.kubernetes.io/name': 'mirra',
        'app.kubernetes.io/instance': 'mirra',
        'app.kubernetes.io/component': 'agent',
        'controller-revision-hash': '6d9f7c8b5d',
        'pod-template-generation': '3',
      },
      annotations: { 'kubectl.kubernetes.io/default-container': 'agent', ...annotations },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'DaemonSet',
          name: 'mirra-agent',
          uid: '0b6c1f7e-2a5d-4e8f-9c3b-7d1e2f3a4b5c',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      volumes: podVolumes(),
      containers: [agentContainer()],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'mirra-agent',
      serviceAccount: 'mirra-agent',
      nodeName: node,
      securityContext: {},
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] },
        },
      },
      schedulerName: 'default-scheduler',
      tolerations: [
        { operator: 'Exists' },
        ...['not-ready', 'unreachable'].map((t) => ({ key: `node.kubernetes.io/${t}`, operator: 'Exists', effect: 'NoExecute' })),
        ...['disk-pressure', 'memory-pressure', 'pid-pressure', 'unschedulable'].map((t) => ({
          key: `node.kubernetes.io/${t}`,
          operator: 'Exists',
          effect: 'NoSchedule',
        })),
      ],
      priorityClassName: 'system-node-critical',
      priority: 2000001000,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: podStatus(hostIP, podIP, started),
  };
}
