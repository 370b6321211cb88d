// Minimal ustar writing (one regular file per archive is all the image
// generator needs) and a strict reader used by tests to check archives.

export const TAR_BLOCK_BYTES = 512;

/** Fixed mtime of generated entries, so archives are reproducible. */
const MTIME_SECONDS = 1_704_067_200; // 2024-01-01T00:00:00Z

function writeString(block: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`tar: ${JSON.stringify(value)} does not fit in ${length} bytes`);
  bytes.copy(block, offset);
}

/** Octal number, zero-padded to length-1 digits, NUL-terminated. */
function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8).padStart(length - 1, '0');
  if (digits.length > length - 1) throw new Error(`tar: ${value} does not fit in ${length} octal bytes`);
  writeString(block, offset, length, `${digits}\0`);
}

function checksum(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK_BYTES; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum;
}

/** The 512-byte ustar header of a regular file (mode 0644, owner root). */
export function tarHeader(name: string, sizeBytes: number): Buffer {
  if (name.length === 0 || Buffer.byteLength(name) > 100) throw new Error(`tar: bad file name ${JSON.stringify(name)}`);
  const block = Buffer.alloc(TAR_BLOCK_BYTES);
  writeString(block, 0, 100, name);
  writeOctal(block, 100, 8, 0o644);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, sizeBytes);
  writeOctal(block, 136, 12, MTIME_SECONDS);
  block[156] = 0x30; // typeflag '0': regular file
  writeString(block, 257, 6, 'ustar\0');
  writeString(block, 263, 2, '00');
  writeString(block, 265, 32, 'root');
  writeString(block, 297, 32, 'root');
  writeOctal(block, 329, 8, 0);
  writeOctal(block, 337, 8, 0);
  // Checksum: six octal digits, NUL, space (as GNU tar and Go's archive/tar write it).
  writeString(block, 148, 8, `${checksum(block).toString(8).padStart(6, '0')}\0 `);
  return block;
}

/** End of archive: two zero blocks. */
export function tarTrailer(): Buffer {
  return Buffer.alloc(2 * TAR_BLOCK_BYTES);
}

export interface TarEntry {
  name: string;
  mode: number;
  type: string;
  sizeBytes: number;
  /** Offset of the file data in the archive. */
  dataOffset: number;
}

function readString(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? length : end).toString('utf8');
}

function readOctal(block: Buffer, offset: number, length: number): number {
  const text = readString(block, offset, length).trim();
  if (!/^[0-7]+$/.test(text)) throw new Error(`tar: bad octal field ${JSON.stringify(text)} at ${offset}`);
  return Number.parseInt(text, 8);
}

/** Parses a whole ustar archive, checking header checksums, data padding and the end-of-archive blocks. */
export function readTar(archive: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  let offset = 0;
  for (;;) {
    if (offset + TAR_BLOCK_BYTES > archive.length) throw new Error('tar: truncated archive (no end blocks)');
    const block = archive.subarray(offset, offset + TAR_BLOCK_BYTES);
    if (block.every((byte) => byte === 0)) {
      const next = archive.subarray(offset + TAR_BLOCK_BYTES, offset + 2 * TAR_BLOCK_BYTES);
      if (next.length !== TAR_BLOCK_BYTES || !next.every((byte) => byte === 0)) throw new Error('tar: missing second end block');
      return entries;
    }
    if (readOctal(block, 148, 8) !== checksum(block)) throw new Error(`tar: bad header checksum at ${offset}`);
    if (readString(block, 257, 6) !== 'ustar') throw new Error(`tar: not a ustar header at ${offset}`);
    const sizeBytes = readOctal(block, 124, 12);
    const entry: TarEntry = {
      name: readString(block, 0, 100),
      mode: readOctal(block, 100, 8),
      type: String.fromCharCode(block[156] ?? 0),
      sizeBytes,
      dataOffset: offset + TAR_BLOCK_BYTES,
    };
    entries.push(entry);
    offset = entry.dataOffset + Math.ceil(sizeBytes / TAR_BLOCK_BYTES) * TAR_BLOCK_BYTES;
  }
}
