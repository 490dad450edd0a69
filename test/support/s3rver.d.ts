// Types for the parts of s3rver 3.x (which ships none) that the test suite uses.
declare module "s3rver" {
  import type { Server } from "node:http";
  import type { AddressInfo } from "node:net";

  interface S3rverOptions {
    address?: string;
    port?: number;
    silent?: boolean;
    directory?: string;
    resetOnClose?: boolean;
    allowMismatchedSignatures?: boolean;
    vhostBuckets?: boolean;
    configureBuckets?: { name: string; configs?: (string | Buffer)[] }[];
    /** HTTPS instead of HTTP. */
    key?: Buffer;
    cert?: Buffer;
  }

  export default class S3rver {
    constructor(options?: S3rverOptions);
    /** Resolves with the listening address once buckets in `configureBuckets` exist. */
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
    reset(): void;
    /** Set by run(). */
    httpServer?: Server;
    on(event: "error", listener: (err: Error) => void): this;
  }
}
