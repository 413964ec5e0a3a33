/**
 * Reading a JSON request body: 400 with OpenAI's wording when it is not JSON. The size limit is
 * enforced before this by the body-limit middleware (413).
 * @module
 */
import type { Context } from "hono";
import { badRequest } from "./errors.ts";

/** The parsed body, or a 400 `ApiError`. */
export async function readJson(c: Context): Promise<unknown> {
  let text: string;
  try {
    text = await c.req.text();
  } catch (e) {
    if (e instanceof Error && e.name === "HTTPException") throw e; // body-limit's 413
    throw badRequest("We could not read the body of your request.", null);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw badRequest(
      "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
      null,
      "invalid_json",
    );
  }
}
