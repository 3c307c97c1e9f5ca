package klingfamily

import "strings"

// doc is the prefix of every page a row names.
const doc = "https://klingai.com/document-api/"

// legacy builds a legacy family created at /v1/{name}: queried at
// /v1/{name}/{id} (with the external id in the path where byExternal),
// listed by pageNum/pageSize up to maxPage tasks a page.
func legacy(name string, makes []Output, byExternal bool, maxPage int, page string) Family {
	create := "/v1/" + name
	group, _, _ := strings.Cut(name, "/")
	return Family{
		Name: name, Create: create, Group: group, Makes: makes, Shape: Legacy,
		Query: Query{Kind: QueryPath, Path: create, ByExternal: byExternal},
		List:  List{Kind: ListPaged, Path: create, MaxPageSize: maxPage},
		Page:  page,
	}
}

// tasks builds a family of the newer API created at /{product}/{model}:
// queried and listed with every other product at /tasks.
func tasks(create string, makes []Output, page string) Family {
	return Family{
		Name: create[1:], Create: create, Group: "tasks", Makes: makes, Shape: New,
		Query: Query{Kind: QueryIDs, Path: TasksPath, ByExternal: true},
		List:  List{Kind: ListCursor, Path: TasksPath, MaxPageSize: MaxCursorLimit, StringTimes: true},
		Page:  page,
	}
}

// solution builds a family of the solutions API created at
// /solutions/{name}: queried and listed at /solutions, at most 20 ids a
// query.
func solution(name string, makes []Output, page string) Family {
	create := "/solutions/" + name
	return Family{
		Name: create[1:], Create: create, Group: "solutions", Makes: makes, Shape: New,
		Query: Query{Kind: QueryIDs, Path: SolutionsPath, ByExternal: true, MaxIDs: 20},
		List:  List{Kind: ListCursor, Path: SolutionsPath, MaxPageSize: MaxCursorLimit},
		Page:  page,
	}
}

// noted adds how a row was read when it is not straight from its page.
func noted(f Family, note string) Family {
	f.Note = note
	return f
}

var (
	video    = []Output{Video}
	image    = []Output{Image}
	audio    = []Output{Audio}
	subtitle = []Output{Video, Subtitle}
)

// table is every family Kling documents. Rows whose page is not among the
// mirrored official pages keep the previous reading and say so in their
// Note (and testdata/kling/queries/SOURCES.md); ByExternal is set only
// where a page documents the external id in the path, or for those rows
// where every sibling page does.
var table = []Family{
	noted(legacy("videos/text2video", video, true, MaxPageSize, ""), "page not among the mirrored official pages; the shape follows api/video/avatar"),
	noted(legacy("videos/image2video", video, true, MaxPageSize, ""), "page not among the mirrored official pages; the shape follows api/video/avatar"),
	noted(legacy("videos/omni-video", video, true, MaxPageSize, ""), "page not among the mirrored official pages; the shape follows api/video/avatar"),
	noted(legacy("videos/multi-image2video", video, true, MaxPageSize, ""), "page not among the mirrored official pages; the shape follows api/video/avatar"),
	noted(legacy("videos/video-extend", video, true, MaxPageSize, ""), "page not among the mirrored official pages; the shape follows api/video/avatar"),
	noted(legacy("videos/lip-sync", video, true, MaxPageSize, ""), "older endpoint: api/video/lip-sync now documents advanced-lip-sync; the shape follows api/video/avatar"),
	legacy("videos/advanced-lip-sync", video, false, MaxPageSize, doc+"api/video/lip-sync"),
	legacy("videos/effects", video, true, MaxPageSize, doc+"api/effects/video-effects"),
	legacy("videos/avatar/image2video", video, true, MaxPageSize, doc+"api/video/avatar"),
	noted(legacy("videos/motion-control", video, true, MaxPageSize, doc+"api/video/motion-control"), "legacy endpoint, read from a third-party copy of its page; the official pages now document the per-model motion-control paths"),
	legacy("videos/multi-elements", video, true, MaxPageSize, doc+"api/video/multi-elements"),
	legacy("images/generations", image, true, MaxPageSize, doc+"api/image/2-1/image-generation"),
	legacy("images/omni-image", image, true, MaxPageSize, doc+"api/image/3-0-omni/image-omni"),
	legacy("images/multi-image2image", image, true, MaxPageSize, doc+"api/image/2-1/multi-image-to-image"),
	legacy("images/editing/expand", image, true, MaxPageSize, doc+"api/image/common/outpainting"),
	noted(legacy("images/kolors-virtual-try-on", image, true, MaxPageSize, ""), "page not among the mirrored official pages; the shape follows api/image/common/outpainting"),
	noted(legacy("audio/text-to-audio", audio, true, MaxPageSize, ""), "page not among the mirrored official pages; the shape follows api/video/audio-generation/video-to-audio"),
	legacy("audio/video-to-audio", []Output{Video, Audio}, true, MaxPageSize, doc+"api/video/audio-generation/video-to-audio"),
	{
		// Text to speech answers its create request with the result and
		// documents no query: nothing to reconcile.
		Name: "audio/tts", Create: "/v1/audio/tts", Group: "audio", Makes: audio, Shape: Legacy,
		Page: doc + "api/video/avatar/text-to-speech",
	},
	legacy("general/custom-voices", []Output{Voice}, true, 1000, doc+"api/video/2-6/voice-customization"),
	legacy("general/advanced-custom-elements", []Output{Element}, true, MaxPageSize, doc+"api/image/o1/elements"),
	legacy("general/ai-multi-shot", image, false, MaxPageSize, doc+"api/image/common/subject-completion"),

	tasks("/text-to-video/kling-2.6", video, doc+"api/video/2-6/text-to-video"),
	tasks("/motion-control/kling-2.6", video, doc+"api/video/motion-control/2-6"),
	noted(tasks("/text-to-video/kling-3.0", video, doc+"api/video/3-0-omni"), "a tab of the 3.0 page group; its own page is not among the mirrored pages"),
	tasks("/image-to-video/kling-3.0", video, doc+"api/video/3-0-omni/image-to-video"),
	tasks("/image-to-video/kling-3.0-turbo", video, doc+"api/video/3-0-turbo/image-to-video"),
	noted(tasks("/omni-video/kling-3.0-omni", video, doc+"api/video/3-0-omni"), "the Omni video tab of the 3.0 page group"),
	tasks("/motion-control/kling-3.0", video, doc+"api/video/3-0-omni/motion-control"),

	solution("drama_subtitle", subtitle, doc+"api/ecommerce-replication/drama-subtitle"),
	solution("talking_agent", video, doc+"api/ecommerce-replication/video-commerce"),
	solution("e-commerce/goods_studio", video, doc+"api/ecommerce-replication/goods-studio"),
	solution("e-commerce/clothing_dupe", []Output{Image, Video}, doc+"api/ecommerce-replication/apparel"),
	solution("virtual_try_on", image, doc+"api/ecommerce-replication/virtual-try-on"),
}
