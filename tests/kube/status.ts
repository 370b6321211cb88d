// metav1.Status bodies and the error type that carries them, shaped like the
// real kube-apiserver's answers (kind Status, status Failure, reason, code,
// details with name/kind/causes).

export interface StatusCause {
  reason: string;
  message: string;
  field: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  details?: StatusDetails;
  code: number;
}

export function failure(code: number, reason: string, message: string, details?: StatusDetails): Status {
  const status: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details !== undefined) status.details = details;
  return status;
}

/** An error answered to the client as a Status body with its code. */
export class ApiError extends Error {
  readonly status: Status;
  constructor(status: Status) {
    super(status.message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** What a resource is called in messages: "pods" or "endpointslices.discovery.k8s.io". */
export interface ResourceName {
  plural: string;
  group: string;
}

function qualified(resource: ResourceName): string {
  return resource.group === '' ? resource.plural : `${resource.plural}.${resource.group}`;
}

function detailsFor(resource: ResourceName, name: string): StatusDetails {
  const details: StatusDetails = { name, kind: resource.plural };
  if (resource.group !== '') details.group = resource.group;
  return details;
}

export function notFound(resource: ResourceName, name: string): ApiError {
  return new ApiError(failure(404, 'NotFound', `${qualified(resource)} "${name}" not found`, detailsFor(resource, name)));
}

export function alreadyExists(resource: ResourceName, name: string): ApiError {
  return new ApiError(failure(409, 'AlreadyExists', `${qualified(resource)} "${name}" already exists`, detailsFor(resource, name)));
}

export function conflict(resource: ResourceName, name: string): ApiError {
  const message =
    `Operation cannot be fulfilled on ${qualified(resource)} "${name}": ` +
    'the object has been modified; please apply your changes to the latest version and try again';
  return new ApiError(failure(409, 'Conflict', message, detailsFor(resource, name)));
}

/** 422 Invalid; `kind` is the object kind ("Pod"), as the real server words it. */
export function invalid(kind: string, group: string, name: string, causes: StatusCause[]): ApiError {
  const list = causes.map((c) => `${c.field}: ${c.message}`);
  const joined = list.length === 1 ? (list[0] ?? '') : `[${list.join(', ')}]`;
  const details: StatusDetails = { name, kind, causes };
  if (group !== '') details.group = group;
  return new ApiError(failure(422, 'Invalid', `${kind} "${name}" is invalid: ${joined}`, details));
}

export function badRequest(message: string): ApiError {
  return new ApiError(failure(400, 'BadRequest', message));
}

export function gone(message: string): Status {
  return failure(410, 'Expired', message);
}

export function methodNotAllowed(message: string): ApiError {
  return new ApiError(failure(405, 'MethodNotAllowed', message, {}));
}

export function unsupportedMediaType(contentType: string): ApiError {
  return new ApiError(
    failure(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${contentType || 'none'})`,
    ),
  );
}
