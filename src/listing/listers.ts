// Lists what an import reads: an S3 bucket through ListObjectsV2, or a directory tree (a copy made with
// `aws s3 sync`), both behind the walk's Lister interface. A listing that fails is fatal to the import, unlike an
// object that fails.
import { access, constants, readdir, stat } from "node:fs/promises";
import type { ListObjectsV2CommandInput, ListObjectsV2CommandOutput, S3Client } from "@aws-sdk/client-s3";
import { classifyError, errorName } from "../shared/aws-errors.js";
import { type RetryPolicy, sleep } from "../shared/retry.js";
import type { Lister, ObjectEntry } from "./layout.js";

export type ListErrorCode = "NotFound" | "AccessDenied" | "ListFailed";

export class ListError extends Error {
  override readonly name = "ListError";
  constructor(
    readonly code: ListErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** ListObjectsV2 over one bucket, paginated, retrying transient failures like the filter does for objects. */
export class S3Lister implements Lister {
  /** ListObjectsV2 requests sent (retries included). */
  requests = 0;

  constructor(
    private readonly client: () => Promise<S3Client>,
    private readonly bucket: string,
    private readonly retry: RetryPolicy,
    private readonly signal: AbortSignal,
    /** A Requester Pays bucket: listing it costs this account, and S3 refuses it without saying so. */
    private readonly requestPayer = false,
  ) {}

  async children(prefix: string): Promise<string[]> {
    const prefixes: string[] = [];
    for await (const page of this.pages(prefix, "/")) {
      for (const common of page.CommonPrefixes ?? []) if (common.Prefix !== undefined) prefixes.push(common.Prefix);
    }
    return prefixes;
  }

  async *objects(prefix: string): AsyncGenerator<ObjectEntry[]> {
    for await (const page of this.pages(prefix, undefined)) {
      yield (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ key: o.Key, size: o.Size ?? 0 }]));
    }
  }

  // https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
  private async *pages(prefix: string, delimiter: string | undefined): AsyncGenerator<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    do {
      const input: ListObjectsV2CommandInput = { Bucket: this.bucket, Prefix: prefix };
      if (delimiter !== undefined) input.Delimiter = delimiter;
      if (token !== undefined) input.ContinuationToken = token;
      if (this.requestPayer) input.RequestPayer = "requester";
      const page = await this.send(input);
      yield page;
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private async send(input: ListObjectsV2CommandInput): Promise<ListObjectsV2CommandOutput> {
    const where = `s3://${this.bucket}/${input.Prefix ?? ""}`;
    const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
    const client = await this.client();
    let firstFailureAt = 0;
    for (let attempt = 1; ; attempt++) {
      await sleep(this.retry.pauseMs(), this.signal);
      this.requests++;
      try {
        const page = await client.send(new ListObjectsV2Command(input), { abortSignal: this.signal });
        this.retry.succeeded();
        return page;
      } catch (error) {
        const failure = classifyError(error);
        const message = `Failed to list ${where}: ${errorName(error)}`;
        if (this.signal.aborted) throw new ListError("ListFailed", `${message} (aborted)`);
        if (failure.kind !== "Failed") throw new ListError(failure.kind, message);
        if (failure.throttled) this.retry.throttled();
        if (attempt === 1) firstFailureAt = this.retry.now();
        const delay = failure.transient ? this.retry.delayAfter(attempt, firstFailureAt) : undefined;
        if (delay === undefined) throw new ListError("ListFailed", `${message} (after ${attempt} attempts)`);
        await sleep(delay, this.signal);
      }
    }
  }
}

const PAGE = 1000;

/**
 * A directory tree listed as if it were a bucket whose keys are the paths below `/` ("data/AWSLogs/…"), so the walk
 * treats both the same. A missing directory lists as empty, as a missing S3 prefix does.
 */
export class FileLister implements Lister {
  /** Directories read (the counterpart of S3Lister's requests). */
  requests = 0;

  async children(prefix: string): Promise<string[]> {
    const entries = await this.read(prefix);
    return entries.filter((e) => e.isDirectory()).map((e) => `${prefix}${e.name}/`);
  }

  async *objects(prefix: string): AsyncGenerator<ObjectEntry[]> {
    let page: ObjectEntry[] = [];
    for await (const entry of this.files(prefix)) {
      page.push(entry);
      if (page.length >= PAGE) {
        yield page;
        page = [];
      }
    }
    if (page.length > 0) yield page;
  }

  private async *files(prefix: string): AsyncGenerator<ObjectEntry> {
    for (const entry of await this.read(prefix)) {
      const key = `${prefix}${entry.name}`;
      if (entry.isDirectory()) yield* this.files(`${key}/`);
      else if (entry.isFile()) yield { key, size: (await stat(`/${key}`)).size };
    }
  }

  private async read(prefix: string) {
    this.requests++;
    try {
      const entries = await readdir(`/${prefix}`, { withFileTypes: true });
      return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (error) {
      const code = errorName(error);
      if (code === "ENOENT" || code === "ENOTDIR") return [];
      const message = `Failed to list file:///${prefix}: ${code}`;
      throw new ListError(code === "EACCES" || code === "EPERM" ? "AccessDenied" : "ListFailed", message);
    }
  }
}

/** Fails as a listing of a missing bucket does when the directory to import is missing or unreadable. */
export async function checkDirectory(path: string): Promise<void> {
  try {
    if (!(await stat(path)).isDirectory())
      throw new ListError("NotFound", `Failed to list file://${path}: not a directory`);
    await access(path, constants.R_OK | constants.X_OK);
  } catch (error) {
    if (error instanceof ListError) throw error;
    const code = errorName(error);
    const kind = code === "ENOENT" ? "NotFound" : code === "EACCES" || code === "EPERM" ? "AccessDenied" : "ListFailed";
    throw new ListError(kind, `Failed to list file://${path}: ${code}`);
  }
}
