// A small windowing list: only the rows in view (plus a margin) are in the DOM, so a folder of
// 10,000 messages scrolls as smoothly as one of 10. Fixed row height; rows positioned by
// transform (set through the CSSOM by React: allowed by the CSP, unlike style attributes).
import { useEffect, useRef, useState, type ReactNode } from 'react';

export function VirtualList<T>(props: {
  count: number;
  rowHeight: number;
  item: (index: number) => T | undefined;
  render: (item: T | undefined, index: number) => ReactNode;
  onNeedMore?: (lastVisible: number) => void;
  label: string;
  scrollTo?: number;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  const { count, rowHeight, onNeedMore } = props;

  useEffect(() => {
    const el = ref.current!;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // Keep the selected row in view (keyboard navigation).
  useEffect(() => {
    const el = ref.current;
    if (!el || props.scrollTo === undefined || props.scrollTo < 0) return;
    const y = props.scrollTo * rowHeight;
    if (y < el.scrollTop) el.scrollTop = y;
    else if (y + rowHeight > el.scrollTop + el.clientHeight) el.scrollTop = y + rowHeight - el.clientHeight;
  }, [props.scrollTo, rowHeight]);

  const overscan = 8;
  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const last = Math.min(count - 1, Math.ceil((top + height) / rowHeight) + overscan);

  useEffect(() => {
    if (onNeedMore && count > 0) onNeedMore(last);
  }, [last, count, onNeedMore]);

  const rows: ReactNode[] = [];
  for (let i = first; i <= last; i++)
    rows.push(
      <li key={i} className="vrow" aria-setsize={count} aria-posinset={i + 1} style={{ transform: `translateY(${i * rowHeight}px)`, height: rowHeight }}>
        {props.render(props.item(i), i)}
      </li>,
    );
  return (
    <div className="vlist" ref={ref} onScroll={(e) => setTop(e.currentTarget.scrollTop)}>
      <ul aria-label={props.label} style={{ height: count * rowHeight }}>
        {rows}
      </ul>
    </div>
  );
}
