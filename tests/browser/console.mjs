// The admin console in a real browser: Debian's chromium driven by
// playwright-core against a running `warden serve` that
// tests/suite/console.rs started and prepared (a paused run whose tool
// arguments carry an XSS payload, a failed run whose input carries
// another). Each flow saves a screenshot. Prints one JSON line per check;
// exits non-zero on the first failure.
//
// Env: WARDEN_BASE, CONSOLE_KEY (an admin key for the browser), ROOT_KEY
// (an admin key for the API), PAUSED_RUN, REAL_MODEL (the embedded model's
// id), SHOTS (a directory), UPLOAD_DIR (the coding plugin's directory,
// uploaded through the console).

import { chromium } from "playwright-core";

const base = process.env.WARDEN_BASE;
const consoleKey = process.env.CONSOLE_KEY;
const rootKey = process.env.ROOT_KEY;
const pausedRun = process.env.PAUSED_RUN;
const shots = process.env.SHOTS;

function check(name, ok, detail = "") {
  console.log(JSON.stringify({ check: name, ok, detail }));
  if (!ok) {
    throw new Error(`${name} failed: ${detail}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
let status = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  // Every dialog is recorded and dismissed (an XSS payload's alert would
  // land here), except the console's own confirmations while a flow
  // expects one.
  const dialogs = [];
  let expectConfirm = "";
  page.on("dialog", async (d) => {
    if (expectConfirm && d.type() === "confirm" && d.message().startsWith(expectConfirm)) {
      await d.accept();
      return;
    }
    dialogs.push(d.message());
    await d.dismiss();
  });
  const noScriptRan = async () => (await page.evaluate(() => window.__xss === undefined)) && dialogs.length === 0;

  // Log in.
  await page.goto(`${base}/console/overview`);
  check("unauthenticated goes to the login page", page.url().endsWith("/console/login"), page.url());
  await page.fill("#key", consoleKey);
  await Promise.all([page.waitForURL("**/console/overview"), page.click("button[type=submit]")]);
  check("logged in", (await page.textContent("h1")) === "Overview");
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

  // Approve the paused run and see it complete.
  await page.goto(`${base}/console/approvals`);
  const card = page.locator("section.approval", { hasText: pausedRun });
  check("the paused run waits", (await card.count()) === 1);
  const args = await card.locator("pre").textContent();
  check("its arguments show as text, inert", args.includes("<script>window.__xss=2</script>"), args);
  await page.screenshot({ path: `${shots}/approvals.png`, fullPage: true });
  await card.locator("input[name=reason]").fill("checked in the browser");
  await Promise.all([
    page.waitForURL("**/console/approvals?notice=*"),
    card.locator("button[value=approve]").click(),
  ]);
  const notice = await page.textContent(".notice");
  check("approved and completed", notice.includes("Approved run") && notice.includes("completed"), notice);
  await page.goto(`${base}/console/runs/${pausedRun}`);
  const runStatus = await page.textContent("dd .status");
  check("the run page shows it completed", runStatus === "completed", runStatus);
  const kinds = await page.locator("ol.timeline .kind").allTextContents();
  check("its timeline has the approval and the tool call", kinds.includes("approval") && kinds.includes("tool_call"), kinds.join(","));
  await page.screenshot({ path: `${shots}/run.png`, fullPage: true });

  // The runs list renders a hostile input inert.
  await page.goto(`${base}/console/runs`);
  await page.screenshot({ path: `${shots}/runs.png`, fullPage: true });
  const xss = await page.evaluate(() => window.__xss === undefined);
  check("no payload ran", xss && dialogs.length === 0, dialogs.join("|"));

  // Verify the audit chain.
  await page.goto(`${base}/console/audit`);
  await Promise.all([page.waitForURL("**/console/audit/verify"), page.click("text=Verify the chain")]);
  const verified = await page.textContent(".notice");
  check("the chain verifies", verified.startsWith("The chain verifies"), verified);
  await page.screenshot({ path: `${shots}/audit.png`, fullPage: true });

  // Evaluate a policy: the secret's span is highlighted, the text redacted.
  await page.goto(`${base}/console/policies`);
  const described = await page.locator("td", { hasText: "described" }).textContent();
  check("a policy description with markup shows as text", described.includes('<img src=x onerror="window.__xss=5">'), described);
  const testFiles = await page.locator("details summary", { hasText: "hostile.yaml" }).textContent();
  check("the inline tests are listed by file", testFiles.includes("1 passed"), testFiles);
  await page.selectOption("select[name=stage]", "input");
  await page.fill("textarea[name=text]", "my key is AKIAIOSFODNN7EXAMPLE, keep it");
  await Promise.all([page.waitForURL("**/console/policies/evaluate*"), page.click("text=Evaluate >> nth=-1")]);
  const marked = await page.locator("pre.highlighted mark").allTextContents();
  check("the matched span is highlighted", marked.includes("AKIAIOSFODNN7EXAMPLE"), marked.join("|"));
  const redacted = await page.textContent("#redacted");
  check("the redacted text is shown", redacted.includes("[REDACTED:aws_access_key]") && !redacted.includes("AKIA"), redacted);
  await page.screenshot({ path: `${shots}/policies.png`, fullPage: true });

  // A rule message with markup, and an audit record whose agent field is
  // markup: both render as text.
  await page.fill("input[name=agent]", '<img src=x onerror="window.__xss=6">');
  await page.fill("textarea[name=text]", "an xss-marker here");
  await Promise.all([page.waitForURL("**/console/policies/evaluate*"), page.click("text=Evaluate >> nth=-1")]);
  check("the marker is blocked", (await page.textContent("#decision")) === "block");
  const message = await page.textContent("section.result p");
  check("the rule's message shows as text", message.includes("<script>window.__xss=4</script>"), message);
  await page.goto(`${base}/console/audit?channel=evaluate`);
  const agentCell = await page.locator("tbody td", { hasText: "window.__xss=6" }).first().textContent();
  check("an audit field with markup shows as text", agentCell.includes('<img src=x onerror="window.__xss=6">'), agentCell);
  check("no policy or audit payload ran", await noScriptRan(), dialogs.join("|"));

  // Disable and enable a plugin.
  await page.goto(`${base}/console/plugins`);
  const doc = page.locator('[id="plugin-warden.document"]');
  await Promise.all([page.waitForURL("**/console/plugins"), doc.locator("button[value=false]").click()]);
  check("the plugin is disabled", (await doc.locator("h2 .status").textContent()) === "disabled");
  await Promise.all([page.waitForURL("**/console/plugins"), doc.locator("button[value=true]").click()]);
  check("the plugin is enabled again", (await doc.locator("h2 .status").textContent()) === "active");
  await page.screenshot({ path: `${shots}/plugins.png`, fullPage: true });

  // Install a plugin from an upload: it asks for capabilities nobody
  // granted, and the page gives the warden.toml lines that grant them.
  await page.click("text=Install or upgrade a plugin");
  await page.setInputFiles("#install input[name=manifest]", `${process.env.UPLOAD_DIR}/plugin.toml`);
  await page.setInputFiles("#install input[name=component]", `${process.env.UPLOAD_DIR}/coding.wasm`);
  await Promise.all([page.waitForEvent("load"), page.click("#install button[type=submit]")]);
  const installed = await page.textContent(".notice");
  check("the upload was installed", installed.startsWith("Installed warden.coding "), installed);
  const coding = page.locator('[id="plugin-warden.coding"]');
  check("the uploaded plugin is active", (await coding.locator("h2 .status").textContent()) === "active");
  const lines = await coding.locator("pre.grant-toml").textContent();
  check(
    "the missing grants come as warden.toml lines",
    lines === '[plugins.grants."warden.coding"]\nllm = true\n',
    lines,
  );
  const missing = await coding.locator("ul.grant li.missing").allTextContents();
  check("requested but not granted is marked", missing.length === 1 && missing[0].startsWith("llm"), missing.join("|"));
  await coding.screenshot({ path: `${shots}/plugin-install.png` });

  // Call its format_json tool with JSON arguments carrying markup: the
  // output is shown as text; bad JSON is refused with what was typed kept.
  const echo = coding.locator("tr", { has: page.locator("code", { hasText: /^format_json$/ }) });
  await echo.locator("summary", { hasText: "Call" }).click();
  await echo.locator("textarea[name=arguments]").fill('{"json": "[\\"<img src=x onerror=window.__xss=7>hello\\"]"}');
  await Promise.all([page.waitForEvent("load"), echo.locator("button[type=submit]").click()]);
  const echoed = page.locator('[id="plugin-warden.coding"] tr', { has: page.locator("code", { hasText: /^format_json$/ }) });
  const output = await echoed.locator(".call-result pre").textContent();
  check("the tool's output is shown", output.includes("hello") && output.includes("onerror"), output);
  check("the output's markup did not run", await noScriptRan(), dialogs.join("|"));
  await echoed.locator("textarea[name=arguments]").fill('{"json": ');
  await Promise.all([page.waitForEvent("load"), echoed.locator("button[type=submit]").click()]);
  const refusedCall = page.locator('[id="plugin-warden.coding"] tr', { has: page.locator("code", { hasText: /^format_json$/ }) });
  const why = await refusedCall.locator(".call-result.failed pre").textContent();
  check("bad JSON is refused precisely", why.includes("not valid JSON"), why);
  check("what was typed is kept", (await refusedCall.locator("textarea[name=arguments]").inputValue()) === '{"json": ');
  await refusedCall.screenshot({ path: `${shots}/plugin-call.png` });

  // A directory plugin whose component changed: accepted from the page.
  const changed = page.locator('[id="plugin-test.hostile"]');
  check("the changed component waits", (await changed.locator("h2 .status").textContent()) === "failed");
  expectConfirm = "Run the new component";
  await Promise.all([page.waitForEvent("load"), changed.locator("text=Accept the changed component").click()]);
  // The notice, or the error when it was refused (so a failure says why).
  const accepted = await page.locator(".notice, [role=alert], main p").first().textContent();
  check("the change was accepted", accepted.startsWith("Accepted the new component of test.hostile"), accepted);
  check("and the plugin runs", (await page.locator('[id="plugin-test.hostile"] h2 .status').textContent()) === "active");
  await page.locator('[id="plugin-test.hostile"]').screenshot({ path: `${shots}/plugin-accept.png` });

  // Remove the uploaded plugin.
  expectConfirm = "Remove warden.coding";
  await page.locator('[id="plugin-warden.coding"] button', { hasText: "Remove" }).click();
  const removed = await page.locator(".notice", { hasText: "Removed" }).textContent();
  check("the uploaded plugin was removed", removed.startsWith("Removed warden.coding"), removed);
  expectConfirm = "";

  // Create an agent and try it on the real model; the run page follows it.
  await page.goto(`${base}/console/agents`);
  await page.fill("input[name=name]", "browser-notes");
  await page.selectOption("select[name=model]", process.env.REAL_MODEL);
  await page.fill("textarea[name=system_prompt]", "You keep notes for the user with the document tools.");
  await page.check('input[name=tools][value="warden.document/create_document"]');
  await Promise.all([page.waitForURL("**/console/agents/browser-notes"), page.click("button:text('Save')")]);
  check("the agent was saved", (await page.locator("table a", { hasText: "browser-notes" }).count()) === 1);
  await page.screenshot({ path: `${shots}/agent.png`, fullPage: true });
  await page.fill("textarea[name=message]", "Save a note titled 'Console' saying 'Made in the browser.'");
  await Promise.all([page.waitForURL("**/console/runs/run_*"), page.click("text=Start a run")]);
  let ran = "";
  for (let i = 0; i < 300 && (ran === "" || ran === "running"); i++) {
    await page.waitForTimeout(1000);
    ran = (await page.textContent("dd .status").catch(() => "")) || "";
  }
  check("the tried run ended", ran !== "" && ran !== "running", ran);
  const steps = await page.locator("ol.timeline .kind").allTextContents();
  check("the real model was called", steps.includes("model"), steps.join(","));
  await page.screenshot({ path: `${shots}/tried.png`, fullPage: true });

  // The overview's model table follows the metrics: the real model has
  // generated in the last minute, so its live rate is above zero.
  await page.goto(`${base}/console/overview`);
  await page.waitForFunction(() => document.getElementById("model-load").dataset.updated !== undefined, null, { timeout: 10000 });
  const rate = await page.locator(`#model-load tr[data-model="${process.env.REAL_MODEL}"] .tps`).textContent();
  check("the overview shows the model's live tokens/s", Number(rate) > 0, rate);
  await page.screenshot({ path: `${shots}/overview-live.png`, fullPage: true });

  // Keys and usage pages.
  await page.goto(`${base}/console/keys`);
  await page.screenshot({ path: `${shots}/keys.png`, fullPage: true });
  await page.goto(`${base}/console/usage`);
  check("usage has a chart", (await page.locator("svg").count()) >= 1);
  await page.screenshot({ path: `${shots}/usage.png`, fullPage: true });

  // Framed by another page: refused (frame-ancestors 'none').
  const framer = await context.newPage();
  await framer.setContent(`<iframe id="f" src="${base}/console/overview" width="600" height="400"></iframe>`);
  await framer.waitForTimeout(1000);
  const framed = framer.frames().find((f) => f !== framer.mainFrame());
  const framedUrl = framed ? framed.url() : "";
  let framedText = "";
  try {
    framedText = framed ? await framed.evaluate(() => document.body ? document.body.innerText : "") : "";
  } catch (e) {
    framedText = "";
  }
  check("the console refuses to be framed", !framedText.includes("Overview"), `${framedUrl} ${framedText.slice(0, 80)}`);
  await framer.close();

  // A form on another site posting to the console: refused (the cookie is
  // SameSite=Strict and the origin is checked); no key is created.
  const attacker = await context.newPage();
  await attacker.setContent(
    `<form id="x" method="post" action="${base}/console/keys"><input name="name" value="evil"><input name="role" value="admin"><input name="csrf" value="guess"></form>`,
  );
  await Promise.all([attacker.waitForLoadState("load"), attacker.evaluate(() => document.getElementById("x").submit())]);
  await attacker.waitForTimeout(500);
  const answer = await attacker.content();
  check("the cross-site post was refused", !answer.includes("Key evil created"), attacker.url());
  await attacker.close();

  // Revoking the key ends the browser's session at once.
  const revoked = await fetch(`${base}/api/keys/console-admin`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${rootKey}` },
  });
  check("the key was revoked through the API", revoked.ok, String(revoked.status));
  await page.goto(`${base}/console/overview`);
  check("the session ended with its key", page.url().endsWith("/console/login"), page.url());
} catch (e) {
  console.error(e);
  status = 1;
} finally {
  await browser.close();
}
process.exit(status);
