// The run page's media tab: logged images (one card per key, a step slider, all steps as
// thumbnails) and logged tables (sortable), both refreshed while the run is live.
import { useMemo, useState } from "react";
import { api, artifactViewUrl, type ImageItem } from "../api";
import { usePoll } from "../lib/hooks";
import { groupImages, groupTables, pickedAt, stepIndex, thumbnailSteps, type ImageSeries, type TableSeries } from "../lib/media";
import { ErrorNote } from "./Confirm";
import { ArtifactTable } from "./DataTable";

/** At most this many thumbnails in a key's "all steps" strip (evenly spread over its steps). */
const MAX_THUMBNAILS = 60;

export function MediaView({ runId, live }: { runId: number; live: boolean }) {
  const images = usePoll(() => api.images(runId), [runId], undefined, live);
  const tables = usePoll(() => api.tables(runId), [runId], undefined, live);
  const series = useMemo(() => groupImages(images.data ?? []), [images.data]);
  const tableSeries = useMemo(() => groupTables(tables.data ?? []), [tables.data]);
  return (
    <div data-testid="media">
      <section>
        <h2>Images</h2>
        <ErrorNote error={images.error} />
        {images.data && series.length === 0 && <p className="muted">No images. Log some with <code>runyard.log_image(key, image, step=…)</code>.</p>}
        <div className="imagegrid">
          {series.map((s) => <ImageCard key={s.key} runId={runId} series={s} />)}
        </div>
      </section>
      <section>
        <h2>Tables</h2>
        <ErrorNote error={tables.error} />
        {tables.data && tableSeries.length === 0 && <p className="muted">No tables. Log one with <code>runyard.log_table(key, data)</code>.</p>}
        {tableSeries.map((t) => <TableCard key={t.key} runId={runId} series={t} />)}
      </section>
    </div>
  );
}

function Picture({ runId, item, alt, className }: { runId: number; item: ImageItem; alt: string; className?: string }) {
  // width and height reserve the space before the picture loads; small pictures are scaled up (CSS).
  const small = item.width > 0 && item.width < 128 && item.height < 128;
  return (
    <img src={artifactViewUrl(runId, item.path)} alt={alt} loading="lazy" decoding="async"
      width={item.width || undefined} height={item.height || undefined}
      className={[className, small ? "pixelated" : ""].filter(Boolean).join(" ") || undefined} />
  );
}

function ImageCard({ runId, series }: { runId: number; series: ImageSeries }) {
  // The picked step (null: the newest, so a live run's card follows new images; moving the slider to the
  // end follows them again).
  const [picked, setPicked] = useState<number | null>(null);
  const [strip, setStrip] = useState(false);
  const { key, steps } = series;
  const idx = stepIndex(steps, picked);
  const step = steps[idx];
  const shown = series.byStep.get(step) ?? [];
  const thumbs = useMemo(() => (strip ? thumbnailSteps(steps, MAX_THUMBNAILS) : []), [strip, steps]);
  return (
    <div className="imagecard" data-testid="image-card" data-key={key}>
      <h3>{key}</h3>
      <div className="imageshown" data-testid="image-shown" data-step={step}>
        {shown.map((it) => (
          <figure key={it.path}>
            <Picture runId={runId} item={it} alt={`${key} at step ${step}${it.caption ? `: ${it.caption}` : ""}`} />
            {it.caption && <figcaption data-testid="image-caption">{it.caption}</figcaption>}
          </figure>
        ))}
      </div>
      <div className="controls stepper">
        <input type="range" min={0} max={Math.max(0, steps.length - 1)} step={1} value={idx}
          disabled={steps.length < 2} aria-label={`step of ${key}`} aria-valuetext={`step ${step}`}
          onChange={(e) => setPicked(pickedAt(steps, Number(e.target.value)))} />
        <span data-testid="image-step">step {step}</span>
        <span className="muted">({idx + 1} of {steps.length})</span>
        {steps.length > 1 && (
          <button type="button" className="linkish" aria-expanded={strip} onClick={() => setStrip(!strip)}>
            {strip ? "hide steps" : "all steps"}
          </button>
        )}
      </div>
      {strip && (
        <>
          {thumbs.length < steps.length && <p className="muted">{thumbs.length} of {steps.length} steps, evenly spread</p>}
          <ul className="thumbs" aria-label={`all steps of ${key}`}>
            {thumbs.map((s) => (
              <li key={s}>
                <button type="button" className={s === step ? "thumb active" : "thumb"} aria-label={`step ${s}`}
                  aria-pressed={s === step} onClick={() => setPicked(s === steps[steps.length - 1] ? null : s)}>
                  <Picture runId={runId} item={series.byStep.get(s)![0]} alt="" />
                  <span aria-hidden="true">{s}</span>
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}

function TableCard({ runId, series }: { runId: number; series: TableSeries }) {
  // The picked version's path (null: the newest).
  const [picked, setPicked] = useState<string | null>(null);
  const { key, versions } = series;
  const current = versions.find((v) => v.path === picked) ?? versions[versions.length - 1];
  return (
    <div className="tablecard" data-testid="table-card" data-key={key}>
      <h3>{key}</h3>
      {versions.length > 1 && (
        <label className="controls">step
          <select aria-label={`step of table ${key}`} value={current.path} onChange={(e) => setPicked(e.target.value)}>
            {versions.map((v) => <option key={v.path} value={v.path}>{v.step ?? "no step"}</option>)}
          </select>
        </label>
      )}
      <ArtifactTable runId={runId} path={current.path} label={`table ${key}`} rev={`${current.rows}:${current.columns.join(",")}`} />
    </div>
  );
}
