package grafana

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/lbsys/lbsys/internal/telemetry"
)

// datasource points every query at the dashboard's $datasource variable,
// so the dashboards work with whatever Prometheus data source Grafana has
// (provisioning makes one, see Files).
func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${datasource}")}
}

func str(s string) dashboard.StringOrMap { return dashboard.StringOrMap{String: ptr(s)} }

func option(text, value string) dashboard.VariableOption {
	return dashboard.VariableOption{
		Selected: ptr(true),
		Text:     dashboard.StringOrArrayOfString{String: ptr(text)},
		Value:    dashboard.StringOrArrayOfString{String: ptr(value)},
	}
}

// Dashboard is one generated dashboard.
type Dashboard struct {
	UID, Title string
	// File is its file name under grafana/dashboards/.
	File string
	// JSON is the dashboard model Grafana imports, indented, ending in a
	// newline.
	JSON []byte
}

// Dashboards builds every dashboard.
func Dashboards() ([]Dashboard, error) {
	var out []Dashboard
	for _, d := range specs() {
		model, err := build(d)
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", d.uid, err)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // keep PromQL's < and > readable
		if err := enc.Encode(model); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", d.uid, err)
		}
		out = append(out, Dashboard{UID: d.uid, Title: d.title, File: d.file, JSON: b.Bytes()})
	}
	return out, nil
}

func build(d dashboardSpec) (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder(d.title).
		Uid(d.uid).
		Description(d.desc).
		Tags(d.tags).
		Editable().
		Refresh("30s").
		Time("now-3h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder("service").
			Label("Service").
			Datasource(datasource()).
			Query(str(fmt.Sprintf("label_values(%s, service)", telemetry.RequestsTotal))).
			Definition(fmt.Sprintf("label_values(%s, service)", telemetry.RequestsTotal)).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			AllValue(".*").
			Current(option("All", "$__all")))
	if d.instancePrice {
		b = b.WithVariable(dashboard.NewTextBoxVariableBuilder("instance_price").
			Label("Price per instance-hour (USD)").
			Description("What one instance costs for an hour; the cost panel multiplies instance counts by it.").
			DefaultValue(str(DefaultInstancePrice)).
			Current(option(DefaultInstancePrice, DefaultInstancePrice)))
	}
	for _, a := range d.annotations {
		b = b.Annotation(dashboard.NewAnnotationQueryBuilder().
			Name(a.name).
			Datasource(datasource()).
			Enable(true).
			IconColor(a.color).
			Expr(a.expr).
			Step("60s").
			TitleFormat(a.title).
			TextFormat(a.text).
			TagKeys(a.tags))
	}
	id := uint32(0)
	for _, r := range d.rows {
		id++
		b = b.WithRow(dashboard.NewRowBuilder(r.title).Id(id))
		for _, p := range r.panels {
			id++
			pb, err := panel(p, id)
			if err != nil {
				return dashboard.Dashboard{}, fmt.Errorf("panel %q: %w", p.title, err)
			}
			b = b.WithPanel(pb)
		}
	}
	return b.Build()
}

func queries(p panelSpec) []cog.Builder[variants.Dataquery] {
	var qs []cog.Builder[variants.Dataquery]
	for i, t := range p.targets {
		q := prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			RefId(refID(i)).
			Expr(t.expr).
			Range()
		if t.legend != "" {
			q = q.LegendFormat(t.legend)
		}
		if p.kind == statPanel {
			q = q.Instant()
		}
		qs = append(qs, q)
	}
	return qs
}

// thresholdSteps makes the color steps: green below the first value, then
// orange, then red.
func thresholdSteps(values []float64) *dashboard.ThresholdsConfigBuilder {
	colors := []string{"green", "orange", "red"}
	steps := []dashboard.Threshold{{Value: nil, Color: colors[0]}}
	for i, v := range values {
		steps = append(steps, dashboard.Threshold{Value: ptr(v), Color: colors[int(math.Min(float64(i+1), 2))]})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

func panel(p panelSpec, id uint32) (cog.Builder[dashboard.Panel], error) {
	if len(p.targets) == 0 {
		return nil, fmt.Errorf("no query")
	}
	switch p.kind {
	case statPanel:
		sp := stat.NewPanelBuilder().Id(id).Title(p.title).Datasource(datasource()).
			Targets(queries(p)).Unit(p.unit).Span(p.w).Height(p.h).
			GraphMode(common.BigValueGraphModeArea).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))
		if p.desc != "" {
			sp = sp.Description(p.desc)
		}
		if len(p.thresholds) > 0 {
			sp = sp.Thresholds(thresholdSteps(p.thresholds)).ColorMode(common.BigValueColorModeValue)
		}
		return sp, nil
	case heatmapPanel:
		hp := heatmap.NewPanelBuilder().Id(id).Title(p.title).Datasource(datasource()).
			Targets(queries(p)).Unit(p.unit).Span(p.w).Height(p.h).
			Calculate(true).
			Color(heatmap.NewHeatmapColorOptionsBuilder().
				Mode(heatmap.HeatmapColorModeScheme).
				Scheme("RdYlBu").
				Scale(heatmap.HeatmapColorScaleExponential).
				Exponent(0.5).
				Steps(64)).
			ShowLegend()
		if p.desc != "" {
			hp = hp.Description(p.desc)
		}
		return hp, nil
	}
	tp := timeseries.NewPanelBuilder().Id(id).Title(p.title).Datasource(datasource()).
		Targets(queries(p)).Unit(p.unit).Span(p.w).Height(p.h).
		LineWidth(1).FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementRight).
			ShowLegend(true).
			Calcs([]string{"mean", "max", "lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	if p.desc != "" {
		tp = tp.Description(p.desc)
	}
	if p.min != nil {
		tp = tp.Min(*p.min)
	}
	if p.max != nil {
		tp = tp.Max(*p.max)
	}
	if p.stack {
		tp = tp.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).FillOpacity(40)
	}
	if len(p.thresholds) > 0 {
		tp = tp.Thresholds(thresholdSteps(p.thresholds)).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed))
	}
	return tp, nil
}
