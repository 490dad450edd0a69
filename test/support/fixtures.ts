// The fixtures copied into test/fixtures (see its LICENSE).
import { readFileSync } from "node:fs";

/** An AWS documentation example of a notification body, as text. */
export function notificationText(name: string): string {
  return readFileSync(new URL(`../fixtures/notifications/${name}`, import.meta.url), "utf8");
}

/** The bucket and keys named by cloudtrail-native.multi-key.json. */
export const NATIVE_BUCKET = "your-bucket-name";
export const NATIVE_KEYS = [
  "AWSLogs/123456789012/CloudTrail/us-east-2/2016/08/11/123456789012_CloudTrail_us-east-2_20160811T2215Z_kpaMYavMQA9Ahp7L.json.gz",
  "AWSLogs/123456789012/CloudTrail/us-east-2/2016/08/11/123456789012_CloudTrail_us-east-2_20160811T2210Z_zqDkyQv3TK8ZdLr0.json.gz",
  "AWSLogs/123456789012/CloudTrail/us-east-2/2016/08/11/123456789012_CloudTrail_us-east-2_20160811T2205Z_jaMVRa6JfdLCJYHP.json.gz",
];
